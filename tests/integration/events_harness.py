"""The points service as a process, a private Kafka broker, and helpers to read points."""

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomysql
import httpx

from services.points.settings import PointsSettings
from shared import db
from shared.settings import ServiceSettings
from testkit.processes import REPO, service_process
from testkit.servers import free_port

# The Kafka the settings name: one broker, or the three of KAFKA_BROKERS=3 (make test-ha).
BOOTSTRAP = ServiceSettings().kafka_bootstrap_servers


def brokers(bootstrap: str) -> int:
    """How many brokers a bootstrap list names: a private single broker gets topics of one
    replica even when the settings (make test-ha) say three."""
    return len(bootstrap.split(","))


@dataclass
class Topics:
    events: str
    dead_letters: str
    group: str

    @classmethod
    def unique(cls) -> "Topics":
        tag = uuid.uuid4().hex[:10]
        return cls(f"test.events.{tag}", f"test.events.{tag}.DLT", f"test-points-{tag}")

    def env(self, bootstrap: str = BOOTSTRAP) -> dict[str, str]:
        return {
            "EVENTS_TOPIC": self.events,
            "DEAD_LETTER_TOPIC": self.dead_letters,
            "POINTS_GROUP_ID": self.group,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_BROKERS": str(brokers(bootstrap)),
        }

    def payment_settings(self, bootstrap: str = BOOTSTRAP) -> dict[str, object]:
        return {
            "events_topic": self.events,
            "dead_letter_topic": self.dead_letters,
            "kafka_bootstrap_servers": bootstrap,
            "kafka_brokers": brokers(bootstrap),
            "outbox_poll_interval_seconds": 0.2,
            "outbox_retry_backoff_seconds": 0.5,
        }


@contextlib.contextmanager
def points_process(topics: Topics, bootstrap: str = BOOTSTRAP, **env: str) -> Iterator[str]:
    """The points service in its own process, consuming; yields its base URL."""
    with running_points(topics, bootstrap, env=env) as (url, _):
        yield url


@contextlib.contextmanager
def running_points(
    topics: Topics,
    bootstrap: str = BOOTSTRAP,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The points service's URL and process, once ready (or only live: `wait_ready=False`)."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="mockpay-points-")
    settings = {
        **topics.env(bootstrap),
        "POINTS_PORT": str(port),
        "POINTS_MYSQL_DATABASE": os.environ["POINTS_MYSQL_DATABASE"],
        "POINTS_RETRY_BACKOFF_SECONDS": "0.2",
        "POINTS_DB_LOCK_WAIT_SECONDS": "1",
        "POINTS_DATA_DIR": data_dir,
        **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    health = f"{url}/health" if wait_ready else f"{url}/health/live"
    try:
        with service_process("services.points", settings, health) as process:
            yield url, process
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def points_db() -> AsyncIterator[aiomysql.Pool]:
    pool = await db.create_pool(ServiceSettings(), os.environ["POINTS_MYSQL_DATABASE"])
    try:
        yield pool
    finally:
        await db.close_pool(pool)


async def query(pool: aiomysql.Pool, sql: str, *args: object) -> list[tuple]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, args)
        rows = await cur.fetchall()
        await conn.rollback()
        return list(rows)


async def points_of(pool: aiomysql.Pool, users: list[str]) -> dict[str, int]:
    among = ", ".join(["%s"] * len(users))
    rows = await query(
        pool, f"SELECT user_id, balance FROM points_accounts WHERE user_id IN ({among})", *users
    )
    return {user: balance for user, balance in rows}


class PrivateKafka:
    """A broker of the test's own, on free ports, that the test may stop and start."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "MOCKPAY_STATE_DIR": str(state_dir),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "KAFKA_HEAP": "256m",
            "KAFKA_BROKERS": "1",
        }
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _infra(self, command: str) -> None:
        subprocess.run(
            ["bash", "scripts/infra.sh", command], cwd=REPO, env=self.env, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> None:
        self._infra("kafka-up")

    def stop(self) -> None:
        self._infra("kafka-down")


async def points_stats(url: str) -> dict[str, int]:
    """The points service's /stats (operators' counts), with the first configured API key."""
    key = PointsSettings().api_keys()[0]
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{url}/stats", headers={"Authorization": f"Bearer {key}"})
        answer.raise_for_status()
        return dict(answer.json())
