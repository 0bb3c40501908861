"""Settings of the bank gateway and of the fake bank."""

from pydantic import SecretStr

from shared.breaker import BreakerConfig
from shared.settings import BaseServiceSettings


class FakeBankSettings(BaseServiceSettings):
    fake_bank_host: str = "127.0.0.1"
    fake_bank_port: int = 8002
    fake_bank_initial_balance: int = 1_000_000_000_000
    fake_bank_seed: int | None = None


class GatewaySettings(BaseServiceSettings):
    bank_gateway_host: str = "127.0.0.1"
    bank_gateway_port: int = 8001
    bank_gateway_token: SecretStr
    bank_url: str = "http://127.0.0.1:8002"
    bank_connect_timeout_seconds: float = 1.0
    bank_read_timeout_seconds: float = 3.0
    bank_max_connections: int = 100

    breaker_window_size: int = 5
    breaker_minimum_calls: int = 5
    breaker_failure_rate_threshold: float = 40.0
    breaker_slow_call_rate_threshold: float = 100.0
    breaker_slow_call_seconds: float = 2.0
    breaker_wait_in_open_seconds: float = 10.0
    breaker_half_open_calls: int = 3
    breaker_automatic_transition: bool = False

    def breaker_config(self) -> BreakerConfig:
        return BreakerConfig(
            window_size=self.breaker_window_size,
            minimum_calls=self.breaker_minimum_calls,
            failure_rate_threshold=self.breaker_failure_rate_threshold,
            slow_call_rate_threshold=self.breaker_slow_call_rate_threshold,
            slow_call_seconds=self.breaker_slow_call_seconds,
            wait_in_open=self.breaker_wait_in_open_seconds,
            half_open_calls=self.breaker_half_open_calls,
            automatic_transition=self.breaker_automatic_transition,
        )
