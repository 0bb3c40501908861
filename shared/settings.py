"""The settings every service shares; each service subclasses ServiceSettings once."""

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
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
    # Allocations between two young-generation garbage collections (Python's default: 700).
    # At 700 the collector took 11 % of the payment service's CPU (shared/serve.py).
    gc_gen0_threshold: int = Field(20_000, ge=1)


class ServiceSettings(BaseServiceSettings):
    """A service that keeps data: MariaDB, Redis and Kafka addresses."""

    mysql_host: str = "127.0.0.1"
    mysql_port: int = 3306
    mysql_user: str = "mockpay"
    mysql_password: SecretStr
    mysql_pool_min: int = 1
    mysql_pool_max: int = 20
    mysql_connect_timeout_seconds: float = 3.0
    # A request waits this long for a free pooled connection before it is a 503.
    mysql_pool_timeout_seconds: float = 10.0

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
    # Lua scripts (the lock's, idempotency's) run over one pipelined connection per server
    # (shared/redis_scripts.py) instead of redis-py's pool: a fraction of the client CPU.
    redis_pipelined_scripts: bool = True

    # KAFKA_BROKERS nodes listen on KAFKA_PORT, +2, +4 (scripts/infra.sh starts them so);
    # unless KAFKA_BOOTSTRAP_SERVERS names the brokers, clients are given all of them.
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_brokers: int = 1
    kafka_bootstrap_servers: str = ""
    events_topic: str = "payment.events"
    dead_letter_topic: str = "payment.events.DLT"
    points_group_id: str = "mockpay-points"  # payment watches this group's lag too
    kafka_topic_partitions: int = 6
    # Unset: 3 replicas with 3+ brokers (a write needs 2 of them), 1 with a single broker.
    kafka_replication_factor: int | None = None
    kafka_min_insync_replicas: int | None = None

    @model_validator(mode="after")
    def _kafka_cluster(self) -> Self:
        if not self.kafka_bootstrap_servers:
            self.kafka_bootstrap_servers = ",".join(
                f"{self.kafka_host}:{self.kafka_port + 2 * n}" for n in range(self.kafka_brokers)
            )
        return self

    @property
    def topic_replication_factor(self) -> int:
        return self.kafka_replication_factor or min(self.kafka_brokers, 3)

    @property
    def topic_min_insync_replicas(self) -> int:
        if self.kafka_min_insync_replicas:
            return self.kafka_min_insync_replicas
        return 2 if self.topic_replication_factor >= 3 else 1
