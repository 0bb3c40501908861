"""Load settings: from the environment (or make variables), then `.env`."""

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from bench.report import RESULTS
from shared.auth import parse_api_keys
from shared.settings import BaseServiceSettings


class LoadSettings(BaseServiceSettings):
    load_host: str = "http://127.0.0.1:8000"  # the payment service; nothing else is called
    load_points_host: str = "http://127.0.0.1:8003"  # point reads; empty: no point reads
    load_api_key: SecretStr | None = None  # default: the first key of PAYMENT_API_KEYS
    payment_api_keys: SecretStr | None = None

    load_users: int = 50
    load_spawn_rate: float = 25.0  # users started per second
    load_rate: float = 100.0  # target tasks per second over all users (about requests/s)
    load_seconds: int = 60
    load_p99_ms: float = 500.0
    load_max_error_rate: float = 0.001
    load_min_rate_share: float = 0.9  # served below this share of LOAD_RATE: did not hold
    load_timeout_seconds: float = 5.0  # the client gives up and retries the same order id
    load_retries: int = 3
    load_audit: bool = True  # run the audit after the load (needs the system's databases)
    load_results_dir: Path = RESULTS

    # The shop: wallets made before the load starts, a few of them hot.
    load_wallets: int = 200
    load_hot_wallets: int = 3
    load_hot_share: float = 0.1  # share of payments that go to a hot wallet
    load_topup_amount: int = 100_000_000

    # The mix: relative weights of the tasks.
    load_mix_pay: int = 50
    load_mix_replay: int = 5  # the same order id again, as a client retrying after a timeout
    load_mix_cancel: int = 5
    load_mix_topup: int = 8
    load_mix_wallet: int = 2
    load_mix_read: int = 10
    load_mix_points: int = 10
    load_mix_bad: int = 10  # bad requests: a 4xx is expected and counts as success

    # load-threshold
    load_threshold_start: float = 100.0
    load_threshold_step: float = 50.0
    load_threshold_step_seconds: int = 30
    load_threshold_max_rate: float = 2000.0
    load_threshold_user_rate: float = 2.0  # tasks/s per Locust user: users = rate / this

    def api_key(self) -> str:
        if self.load_api_key is not None:
            return self.load_api_key.get_secret_value()
        entries = self.payment_api_keys.get_secret_value() if self.payment_api_keys else ""
        keys = parse_api_keys(entries)
        if not keys:
            raise ValueError("set LOAD_API_KEY, or PAYMENT_API_KEYS in .env")
        return keys[0].secret.decode()

    def is_local(self) -> bool:
        return urlsplit(self.load_host).hostname in {"127.0.0.1", "localhost", "::1"}
