"""Points service settings; every number can be set in the environment or .env."""

from decimal import Decimal
from pathlib import Path

from shared.auth import ApiKeySettings
from shared.settings import REPO_ROOT, ServiceSettings


class PointsSettings(ServiceSettings, ApiKeySettings):
    points_host: str = "127.0.0.1"
    points_port: int = 8003
    points_mysql_database: str = "mockpay_points"
    points_rate: Decimal = Decimal("0.01")
    points_retries: int = 3
    points_retry_backoff_seconds: float = 1.0
    # A dependency outage: retry the event forever, pausing this long at first, doubling up
    # to the maximum.
    points_outage_backoff_seconds: float = 0.5
    points_outage_backoff_max_seconds: float = 5.0
    points_db_lock_wait_seconds: int = 5
    points_commit_interval_seconds: float = 1.0
    # Events a worker handles at once (faust agent concurrency; offsets are committed only
    # up to the oldest unfinished one), and how many of them share one transaction at most.
    points_concurrency: int = 32
    points_batch_max: int = 32
    points_data_dir: Path = REPO_ROOT / ".local" / "points"  # faust's folder, one per group
    # A crashed member's partitions go to the others (or its restarted self) once the
    # broker has missed its heartbeats this long; Kafka's floor is 6 s
    # (group.min.session.timeout.ms).
    points_session_timeout_seconds: float = 10.0
    points_heartbeat_interval_seconds: float = 2.0
    # Worker processes in the group (make up starts them): more than the events topic's
    # partitions (KAFKA_TOPIC_PARTITIONS) would leave some idle, which startup warns about.
    points_workers: int = 1
