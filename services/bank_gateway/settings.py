"""Settings of the bank gateway and of the fake bank."""

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from shared.breaker import BreakerConfig
from shared.settings import BaseServiceSettings


class FakeBankSettings(BaseServiceSettings):
    fake_bank_host: str = "127.0.0.1"
    fake_bank_port: int = 8002
    fake_bank_initial_balance: int = 1_000_000_000_000
    fake_bank_seed: int | None = None
    fake_bank_admin_token: SecretStr  # PUT /faults only; `make up` writes it into .env


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_nested_delimiter="_", env_nested_max_split=1)

    bank_gateway_host: str = "127.0.0.1"
    bank_gateway_port: int = 8001
    bank_gateway_token: SecretStr
    bank_url: str = "http://127.0.0.1:8002"
    bank_connect_timeout_seconds: float = 1.0
    bank_read_timeout_seconds: float = 3.0
    bank_max_connections: int = 100
    # An idle connection to the bank is dropped after this. Below the bank's own keep-alive
    # (the fake bank's uvicorn: 5 s), or a request can leave on a connection the bank is
    # closing at that moment and fail as "server disconnected" (a 502 for a healthy bank).
    bank_keepalive_seconds: float = 4.0

    # BREAKER_WINDOW_SIZE and the like: the part before the first "_" names the nested model.
    breaker: BreakerConfig = BreakerConfig()
