"""POINTS_WORKERS=2: two points workers in one consumer group under supervisord, as `make up`
runs them, behind HAProxy on POINTS_PORT. They share the events topic's partitions; a worker
killed by pid under load hands its partitions to the other, comes back under supervisord,
and every event is applied exactly once (the inbox holds across each rebalance)."""

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from services.points.dlt import read_all
from services.points.settings import PointsSettings
from shared.clock import iso, utcnow
from shared.events import PAYMENT_COMPLETED, PaymentEvent
from shared.kafka import idempotent_producer
from testkit.processes import REPO, ports
from testkit.waiting import eventually, eventually_blocking
from tests.integration.cluster_harness import free_port_run
from tests.integration.events_harness import Topics, points_db, query
from tests.monitoring import prometheus, scrape_settings, wait_for_targets
from tests.monitoring import query as promql
from tests.scrape import named, parse
from tests.supervised import Supervised, supervised_env

pytestmark = pytest.mark.e2e

WORKERS = ("points-1", "points-2")
PARTITIONS = 6
USERS = 24
AMOUNT = 1_000  # earns 10 points at the default rate
TAKEOVER_SECONDS = 90  # a killed member leaves once its session (6 s here) times out


@dataclass
class Workers(Supervised):
    key: str = ""
    worker_urls: dict[str, str] = field(default_factory=dict)

    def assignment(self, worker: str) -> list[int] | None:
        """The worker's partitions, or None while it rebalances or does not answer."""
        try:
            answer = httpx.get(
                f"{self.worker_urls[worker]}/partitions",
                headers={"Authorization": f"Bearer {self.key}"},
                timeout=2,
            )
        except httpx.HTTPError:
            return None
        body = answer.json()
        return body["partitions"] if answer.status_code == 200 and body["joined"] else None

    def ctl(self, *args: str) -> None:
        conf = self.state / "run" / "supervisord.conf"
        subprocess.run(
            [str(REPO / ".venv/bin/supervisorctl"), "-c", str(conf), *args],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def sharing(self) -> bool:
        """Both workers joined, each with partitions, together every partition once."""
        shares = [self.assignment(worker) for worker in WORKERS]
        if any(not share for share in shares):
            return False
        together = [p for share in shares for p in share or []]
        return sorted(together) == list(range(PARTITIONS))


@pytest.fixture(scope="module")
def topics() -> Topics:
    return Topics.unique()


@pytest.fixture(scope="module")
def workers(tmp_path_factory, topics) -> Iterator[Workers]:
    settings = PointsSettings()
    front = ports("points")["points"]
    base = free_port_run(len(WORKERS))
    state = tmp_path_factory.mktemp("points-workers")
    env = supervised_env(
        state, "points",
        **topics.env(settings.kafka_bootstrap_servers),
        POINTS_PORT=str(front), POINTS_WORKERS=str(len(WORKERS)),
        POINTS_WORKER_BASE_PORT=str(base), POINTS_DATA_DIR=str(state / "points"),
        KAFKA_TOPIC_PARTITIONS=str(PARTITIONS), POINTS_SESSION_TIMEOUT_SECONDS="6",
        POINTS_HEARTBEAT_INTERVAL_SECONDS="1", HAPROXY_CHECK_INTERVAL_MS="500",
    )  # fmt: skip
    running = Workers(env, state)
    running.key = settings.api_keys()[0].split(":")[0]
    running.urls = {"points": f"http://127.0.0.1:{front}"}
    running.worker_urls = {w: f"http://127.0.0.1:{base + i}" for i, w in enumerate(WORKERS)}
    running.script("up")
    try:
        yield running
    finally:
        running.script("down")


def test_two_workers_share_the_partitions_behind_one_address(workers):
    eventually_blocking(workers.sharing, 120, interval=0.2, message="the workers never shared")
    assert {"points-1", "points-2", "points"} <= set(workers.pids())
    front = httpx.get(
        f"{workers.urls['points']}/points/nobody-{uuid.uuid4().hex[:8]}",
        headers={"Authorization": f"Bearer {workers.key}"},
    )
    assert (front.status_code, front.json()["code"]) == (404, "ACCOUNT_NOT_FOUND")
    status = workers.script("status")
    assert "points-1 partitions: [" in status and "points-2 partitions: [" in status, status


class Load:
    """PaymentCompleted events, keyed by user as the relay keys them, until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = idempotent_producer(bootstrap)
        self.topic = topic
        self.users = [f"pw-{uuid.uuid4().hex[:10]}" for _ in range(USERS)]
        self.sent = 0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        await self.producer.start()
        try:
            while not self.stopped.is_set():
                user = self.users[self.sent % USERS]
                event = PaymentEvent(
                    event_id=str(uuid.uuid4()), event_type=PAYMENT_COMPLETED,
                    occurred_at=iso(utcnow()), payment_id=str(uuid.uuid4()),
                    order_id=f"o-{uuid.uuid4().hex}", user_id=user, amount=AMOUNT,
                )  # fmt: skip
                await self.producer.send_and_wait(
                    self.topic, event.to_bytes(), key=user.encode(),
                    headers=[("event_type", PAYMENT_COMPLETED.encode())],
                )  # fmt: skip
                self.sent += 1
                await asyncio.sleep(0.01)  # pacing the load (~100/s), not waiting for anything
        finally:
            await self.producer.stop()


async def test_a_worker_killed_under_load_hands_its_partitions_over_and_comes_back(workers, topics):
    await eventually(lambda: asyncio.to_thread(workers.sharing), TAKEOVER_SECONDS)
    load = Load(PointsSettings().kafka_bootstrap_servers, topics.events)
    producing = asyncio.create_task(load.run())
    try:
        await eventually(lambda: _sent(load, 300), 60)
        first = await asyncio.to_thread(workers.pids)
        # The killed worker stays down (supervisord would start it at once and the group
        # would only split again): the other must take every partition.
        os.kill(first["points-1"], signal.SIGKILL)
        await asyncio.to_thread(workers.ctl, "stop", "points-1")
        async with httpx.AsyncClient(headers=_auth(workers)) as client:
            front = await client.get(f"{workers.urls['points']}/points/{load.users[0]}")
        assert front.status_code in (200, 404), front.text  # the API answers through HAProxy

        async def other_took_all() -> bool:
            return await asyncio.to_thread(workers.assignment, "points-2") == list(range(6))

        await eventually(other_took_all, TAKEOVER_SECONDS, 0.2, "points-2 never took over")
        await asyncio.to_thread(workers.ctl, "start", "points-1")
        await eventually(lambda: asyncio.to_thread(workers.sharing), TAKEOVER_SECONDS)
        # Now kill the other one and let supervisord bring it back on its own.
        before = await asyncio.to_thread(workers.pids)
        os.kill(before["points-2"], signal.SIGKILL)

        async def restarted_and_sharing() -> bool:
            now = await asyncio.to_thread(workers.pids)
            if now.get("points-2") in (None, before["points-2"]):
                return False
            return await asyncio.to_thread(workers.sharing)

        await eventually(
            restarted_and_sharing, TAKEOVER_SECONDS, 0.5, "points-2 not back under supervisord"
        )
        sent_before_stop = load.sent
        await eventually(lambda: _sent(load, sent_before_stop + 100), 60)
    finally:
        load.stopped.set()
        await producing
    await _every_event_applied_once(load)
    assert await read_all(PointsSettings().kafka_bootstrap_servers, topics.dead_letters) == []
    print(f"{load.sent} events, each applied once across three rebalances")


async def _sent(load: Load, count: int) -> bool:
    return load.sent >= count


def _auth(workers: Workers) -> dict[str, str]:
    return {"Authorization": f"Bearer {workers.key}"}


async def _every_event_applied_once(load: Load) -> None:
    among = f"user_id IN ({', '.join(['%s'] * USERS)})"
    async with points_db() as pool:

        async def all_applied() -> bool:
            [(entries,)] = await query(
                pool, f"SELECT COUNT(*) FROM points_entries WHERE {among}", *load.users
            )
            return int(entries) >= load.sent

        await eventually(all_applied, 120, 0.5, "not every event was applied")
        [(entries, distinct)] = await query(
            pool,
            f"SELECT COUNT(*), COUNT(DISTINCT event_id) FROM points_entries WHERE {among}",
            *load.users,
        )
        assert entries == distinct == load.sent
        balances = dict(
            await query(
                pool, f"SELECT user_id, balance FROM points_accounts WHERE {among}", *load.users
            )  # fmt: skip
        )
        per_user = {u: sum(1 for i in range(load.sent) if i % USERS == n) * AMOUNT // 100
                    for n, u in enumerate(load.users)}  # fmt: skip
        assert balances == per_user


def test_prometheus_scrapes_each_worker_and_adds_their_counters_up(workers, tmp_path):
    """Each worker a target of its own (HAProxy on POINTS_PORT would hand a scrape to one of
    them): Prometheus's total of events handled is both workers' together."""
    eventually_blocking(workers.sharing, TAKEOVER_SECONDS, interval=0.2, message="not sharing")
    urls = {"points": workers.urls["points"], **workers.worker_urls}

    def handled(worker: str) -> float:
        scraped = parse(httpx.get(f"{workers.worker_urls[worker]}/metrics", timeout=5).text)
        return sum(s.value for s in named(scraped, "mockpay_points_events_total"))

    direct = {worker: handled(worker) for worker in WORKERS}  # after the load: no event runs
    with prometheus(tmp_path, **scrape_settings(urls, "points")) as (url, _):
        up = {("points", worker): "up" for worker in WORKERS}
        wait_for_targets(url, up, {"points"})
        events = 'sum by (instance) (mockpay_points_events_total{job="points"})'

        def as_scraped() -> bool:
            seen = {s["metric"]["instance"]: float(s["value"][1]) for s in promql(url, events)}
            return seen == direct

        eventually_blocking(as_scraped, timeout=30, interval=0.5, message="not each worker's")
        total = promql(url, 'sum(mockpay_points_events_total{job="points"})')
        assert float(total[0]["value"][1]) == sum(direct.values())
