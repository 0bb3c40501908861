"""The settings every service shares; each service subclasses ServiceSettings once."""

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.logs import LogFormat

REPO_ROOT = Path(__file__).resolve().parents[1]


class BaseServiceSettings(BaseSettings):
    """Read from the environment first, then from the repo's `.env` (written by `make up`)."""

    # Settings hold secrets: a validation error names the setting, never echoes its value.
    model_config = SettingsConfigDict(
        env_file=REPO_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    log_level: str = "INFO"
    log_format: LogFormat = "text"  # json under make up
    retry_after_seconds: int = 1
    metrics_refresh_seconds: float = 5.0  # gauges read from a database or Kafka
    health_check_timeout_seconds: float = 2.0


class ServiceSettings(BaseServiceSettings):
    """A service that keeps data: MariaDB, Redis and Kafka addresses."""

    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "mockpay"
    mysql_password: SecretStr
    mysql_pool_min: int = 1
    mysql_pool_max: int = 20
    mysql_connect_timeout_seconds: float = 3.0

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_socket_timeout_seconds: float = 3.0
    redis_pool_max: int = 200
    # A request waits this long for a free pooled connection before it is a 503.
    redis_pool_timeout_seconds: float = 5.0
    redis_health_check_seconds: float = 5.0
    # Commands safe to repeat are retried this often on a connection error, backing off
    # exponentially from the first pause up to the maximum.
    redis_retries: int = 3
    redis_retry_backoff_seconds: float = 0.05
    redis_retry_backoff_max_seconds: float = 1.0

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    events_topic: str = "payment.events"
    dead_letter_topic: str = "payment.events.DLT"
    points_group_id: str = "mockpay-points"  # payment watches this group's lag too
    kafka_topic_partitions: int = 6
    kafka_replication_factor: int = 1
