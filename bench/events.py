"""The event pipeline under load: `make bench-events` (python -m bench.events --help).

1. Commit to points. The payment and points services run as processes on free ports,
   with databases (mockpay_bench_payment, mockpay_bench_points) and a Redis db (14) of
   their own, all emptied at the start of each run, and per-run topics. Payments arrive
   over HTTP at a steady rate, open loop (a slow answer does not slow the schedule down),
   spread over the users. A payment's latency is points_entries.created_at minus
   outbox.created_at, joined on event_id: both are written by the services with the same
   host clock, the outbox row just before the payment commits, so the figure includes
   the commit and errs high. The relay's part of it, commit→published, ends at
   outbox.published_at, set once Kafka has acknowledged the batch; the rest is the
   consumer's. Every payment must earn its points exactly once, or the
   run fails. CPU per process is sampled from /proc over the steady phase.
2. Draining a backlog, with the services stopped: bench/outbox_drain.py.
3. The HTTP floor: a bare ASGI app under the same uvicorn (bench/bare_asgi.py), loaded at
   the same rates by the same client: the CPU per request any Python service pays here
   before doing anything, beside the payment service's CPU per payment.

With --keep-cpus-busy, busy loops at the lowest priority run during step 1, so no core
idles: CPU per payment without what idling between payments costs (see `spinners`).
"""

import argparse
import asyncio
import contextlib
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiomysql
import uvloop
from aiokafka.admin import AIOKafkaAdminClient

from bench.cpu import CpuSample, infra_pids
from bench.lean_http import LeanClient
from bench.outbox_drain import drain
from bench.report import percentile, print_table, write_json
from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from shared import db
from shared.kafka import ensure_topics, topic_specs
from shared.redis_client import create_redis
from testkit.processes import ports, service_process

PAYMENT_DB = "mockpay_bench_payment"
POINTS_DB = "mockpay_bench_points"
REDIS_DB = 14  # the bench's own Redis database, flushed at the start of every run
START_BALANCE = 10**12
LATENCY_TARGET_MS = 250
DRAIN_TARGET_PER_S = 5000


def bench_redis_url() -> str:
    """The configured Redis server (REDIS_URL), with the bench's own database number."""
    configured = urlsplit(PaymentSettings().redis_url)
    return urlunsplit(configured._replace(path=f"/{REDIS_DB}"))


@dataclass(frozen=True)
class Run:
    """Names that belong to this run only, so runs never see each other's events."""

    tag: str

    @property
    def events_topic(self) -> str:
        return f"bench.payment.events.{self.tag}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.events_topic}.DLT"

    @property
    def drain_topic(self) -> str:
        return f"bench.drain.{self.tag}"

    def topics(self) -> list[str]:
        return [self.events_topic, self.dead_letter_topic, self.drain_topic]

    def payment_settings(self, **overrides: Any) -> PaymentSettings:
        values: dict[str, Any] = {
            "payment_mysql_database": PAYMENT_DB,
            "redis_url": bench_redis_url(),
            "events_topic": self.events_topic,
            "dead_letter_topic": self.dead_letter_topic,
        }
        return PaymentSettings(**{**values, **overrides})


# ---- databases ------------------------------------------------------------------------


async def start_clean(settings: PaymentSettings) -> None:
    """Fresh bench databases and an empty bench Redis db: no state from earlier runs."""
    redis = create_redis(settings)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()
    conn = await db.connect(settings)
    try:
        async with conn.cursor() as cur:
            for name in (PAYMENT_DB, POINTS_DB):
                await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                await cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()


async def scalar(pool: aiomysql.Pool, sql: str, *args: object) -> int:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, args)
        (value,) = await cur.fetchone()
        await conn.rollback()  # end the snapshot, so the next call sees new rows
        return int(value or 0)


async def wait_for_count(
    pool: aiomysql.Pool, sql: str, arg: object, expected: int, timeout: float
) -> int:
    """Poll a COUNT query until it reaches `expected` or the timeout passes; the last count."""
    deadline = time.monotonic() + timeout
    while True:
        count = await scalar(pool, sql, arg)
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.05)


# ---- phase 1: commit to points -------------------------------------------------------


@dataclass
class LoadResult:
    sent: int
    statuses: Counter
    http_latencies: list[float]
    seconds: float
    max_lag: float  # how far the schedule fell behind, at worst

    @property
    def rate(self) -> float:
        return self.statuses[201] / self.seconds if self.seconds else 0.0


async def steady_load(
    clients: list[LeanClient], prefix: str, rate: float, seconds: float, users: int
) -> LoadResult:
    """Send `rate` payments a second for `seconds`, on schedule, whatever the answers take.

    Requests go to the clients (one per payment replica) in turn, as a load balancer would.
    """
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    statuses: Counter = Counter()
    latencies: list[float] = []
    max_lag = 0.0

    async def pay(i: int) -> None:
        body = {
            "order_id": f"{prefix}-{i}",
            "user_id": f"user-{random.randrange(users)}",
            "amount": random.randrange(100, 100_000),
        }
        started = loop.time()
        status = await clients[i % len(clients)].post("/payments", body)
        latencies.append(loop.time() - started)
        statuses[status] += 1

    started = loop.time()
    tasks = []
    for i in range(total):
        delay = started + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            max_lag = max(max_lag, -delay)
        tasks.append(asyncio.create_task(pay(i)))
    await asyncio.gather(*tasks)
    return LoadResult(total, statuses, latencies, loop.time() - started, max_lag)


@contextlib.contextmanager
def services(
    run: Run, replicas: int, fixed: dict[str, int] | None = None
) -> Iterator[tuple[list[int], dict[str, int]]]:
    """The payment service replicas and the points service: payment ports, and all pids.

    `fixed` ports ("points", "payment 1") replace free ones, so that a running Prometheus
    (make monitor) scrapes the benchmark's services and make dashboard can draw them.
    """
    free = {**ports("points", *(f"payment {n + 1}" for n in range(replicas))), **(fixed or {})}
    shared_env = {
        "REDIS_URL": bench_redis_url(),
        "EVENTS_TOPIC": run.events_topic,
        "DEAD_LETTER_TOPIC": run.dead_letter_topic,
        "POINTS_GROUP_ID": f"bench-points-{run.tag}",  # payment exports this group's lag too
        "LOG_LEVEL": "WARNING",
    }
    points_env = {
        **shared_env,
        "POINTS_PORT": str(free.pop("points")),
        "POINTS_MYSQL_DATABASE": POINTS_DB,
    }
    with contextlib.ExitStack() as stack:
        pids = {}
        for name, port in free.items():
            env = {**shared_env, "PAYMENT_PORT": str(port), "PAYMENT_MYSQL_DATABASE": PAYMENT_DB}
            url = f"http://127.0.0.1:{port}/health"
            pids[name] = stack.enter_context(service_process("services.payment", env, url)).pid
        url = f"http://127.0.0.1:{points_env['POINTS_PORT']}/health"
        pids["points"] = stack.enter_context(
            service_process("services.points", points_env, url)
        ).pid
        yield list(free.values()), pids


async def credit_wallets(settings: PaymentSettings, users: int) -> None:
    async with operator_payments(settings) as payments:
        gate = asyncio.Semaphore(20)

        async def credit(n: int) -> None:
            async with gate:
                await payments.create_wallet(f"user-{n}")
                await payments.credit(CreditWallet(f"user-{n}", START_BALANCE, f"bench-seed-{n}"))

        await asyncio.gather(*(credit(n) for n in range(users)))


EARNED = (
    f"SELECT COUNT(*) FROM `{POINTS_DB}`.points_entries e"
    f" JOIN `{PAYMENT_DB}`.payments p ON p.payment_id = e.payment_id"
    " WHERE e.kind = 'EARN' AND p.order_id LIKE %s"
)
LATENCIES = (
    "SELECT TIMESTAMPDIFF(MICROSECOND, o.created_at, e.created_at),"
    " TIMESTAMPDIFF(MICROSECOND, o.created_at, o.published_at)"
    f" FROM `{PAYMENT_DB}`.outbox o JOIN `{POINTS_DB}`.points_entries e ON e.event_id = o.event_id"
    f" JOIN `{PAYMENT_DB}`.payments p ON p.payment_id = e.payment_id"
    " WHERE p.order_id LIKE %s"
)


@dataclass
class Measured:
    row: dict
    cpu: dict


async def measure_rate(
    clients: list[LeanClient],
    pool: aiomysql.Pool,
    prefix: str,
    rate: float,
    pids: dict[str, int],
    args: argparse.Namespace,
) -> Measured:
    """One steady run at `rate`; waits until every payment has earned its points."""
    cpu = CpuSample.begin(pids)
    load = await steady_load(clients, prefix, rate, args.seconds, args.users)
    shares = cpu.end()
    earned = await wait_for_count(
        pool, EARNED, f"{prefix}-%", load.statuses[201], args.settle_seconds
    )
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(LATENCIES, (f"{prefix}-%",))
        rows = await cur.fetchall()
        await conn.rollback()
    latencies = [row[0] / 1e6 for row in rows]
    published = [row[1] / 1e6 for row in rows]  # the relay's part: Kafka acked the send
    if load.statuses[201] != load.sent or earned != load.sent or len(latencies) != load.sent:
        raise SystemExit(
            f"pipeline incomplete at {rate}/s: sent {load.sent}, answers"
            f" {dict(load.statuses)}, points earned for {earned}"
        )
    row = {
        "target rate/s": rate,
        "payments": load.sent,
        "achieved rate/s": round(load.rate, 1),
        "sender lag max ms": round(load.max_lag * 1000, 1),
        "HTTP p50 ms": round(percentile(load.http_latencies, 50) * 1000, 1),
        "HTTP p99 ms": round(percentile(load.http_latencies, 99) * 1000, 1),
        "points applied": earned,
        "commit→points p50 ms": round(percentile(latencies, 50) * 1000, 1),
        "commit→points p95 ms": round(percentile(latencies, 95) * 1000, 1),
        "commit→points p99 ms": round(percentile(latencies, 99) * 1000, 1),
        "commit→points max ms": round(max(latencies) * 1000, 1),
        "commit→published p50 ms": round(percentile(published, 50) * 1000, 1),
        "commit→published p99 ms": round(percentile(published, 99) * 1000, 1),
    }
    cpu_ms = {
        f"{name} cpu ms/payment": per_request(share, load.rate)
        for name, share in shares.items()
        if name.startswith("payment")
    }
    return Measured(row, {"target rate/s": rate, **shares, **cpu_ms})


async def http_floor(args: argparse.Namespace) -> list[dict]:
    """CPU per request of a bare ASGI app under uvicorn (bench/bare_asgi.py), loaded as the
    payment service was: what HTTP alone costs a Python service here, at each rate."""
    port = ports("bare")["bare"]
    url = f"http://127.0.0.1:{port}/health"
    rows = []
    with service_process("bench.bare_asgi", {"BARE_PORT": str(port)}, url) as process:
        client = LeanClient("127.0.0.1", port, {}, args.connections)
        try:
            await steady_load([client], "floor-warm", 200, 2, args.users)
            for rate in args.rates:
                pids = {"server": process.pid, "load generator": os.getpid()}
                cpu = CpuSample.begin(pids)
                load = await steady_load([client], "floor", rate, args.seconds, args.users)
                shares = cpu.end()
                rows.append({
                    "target rate/s": rate,
                    "achieved rate/s": round(load.rate, 1),
                    "bare server cpu ms/request": per_request(shares["server"], load.rate),
                    "load generator cpu ms/request": per_request(
                        shares["load generator"], load.rate
                    ),
                    "machine busy %": shares.get("machine busy %"),
                })  # fmt: skip
        finally:
            await client.close()
    return rows


def per_request(percent_of_core: float, rate: float) -> float:
    return round(percent_of_core * 10 / rate, 3)


async def commit_to_points(run: Run, args: argparse.Namespace) -> list[Measured]:
    settings = run.payment_settings()
    await start_clean(settings)
    await credit_wallets(settings, args.users)
    pool = await db.create_pool(settings, PAYMENT_DB)
    try:
        fixed = {
            name: port
            for name, port in (("payment 1", args.payment_port), ("points", args.points_port))
            if port
        }
        with services(run, args.replicas, fixed) as (payment_ports, service_pids):
            pids = {**service_pids, "load generator": os.getpid(), **infra_pids()}
            headers = {"Authorization": f"Bearer {settings.api_keys()[0]}"}
            clients = [
                LeanClient("127.0.0.1", port, headers, args.connections // args.replicas)
                for port in payment_ports
            ]
            try:
                # Warm up: the points consumer joins its group and every connection is opened.
                warm = await steady_load(clients, f"warm-{run.tag}", 200, 2, args.users)
                await wait_for_count(pool, EARNED, f"warm-{run.tag}-%", warm.statuses[201], 120)
                return [
                    await measure_rate(clients, pool, f"bench-{run.tag}-{n}", rate, pids, args)
                    for n, rate in enumerate(args.rates)
                ]
            finally:
                for client in clients:
                    await client.close()
    finally:
        await db.close_pool(pool)


async def delete_topics(bootstrap_servers: str, run: Run) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in run.topics() if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def verdicts(rows: list[dict], drains: list[dict]) -> list[str]:
    """The issue's targets against what was measured, one line each."""
    lines = []
    for row in rows:
        p99 = row["commit→points p99 ms"]
        kept_up = row["achieved rate/s"] >= 0.98 * row["target rate/s"]
        verdict = "met" if p99 < LATENCY_TARGET_MS and kept_up else "NOT met"
        if p99 < LATENCY_TARGET_MS and not kept_up:
            verdict += " (the rate was not served)"
        lines.append(
            f"{row['target rate/s']:g}/s asked, {row['achieved rate/s']}/s served:"
            f" commit→points p99 {p99} ms, target < {LATENCY_TARGET_MS} ms {verdict}"
        )
    drained = drains[0]["events/s"]
    lines.append(
        f"backlog drained by one relay at {drained} events/s, target >= {DRAIN_TARGET_PER_S}"
        f" {'met' if drained >= DRAIN_TARGET_PER_S else 'NOT met'}"
    )
    return lines


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    run = Run(uuid.uuid4().hex[:8])
    bootstrap_servers = run.payment_settings().kafka_bootstrap_servers
    rates = ", ".join(f"{rate:g}/s" for rate in args.rates)
    settings = run.payment_settings()
    specs = topic_specs(settings, *run.topics())
    await ensure_topics(bootstrap_servers, specs)  # early, so leaders are settled when used
    try:
        print(f"commit→points: {rates}, {args.seconds:g} s each, {args.users} users ...")
        with spinners((os.cpu_count() or 1) if args.keep_cpus_busy else 0):
            measured = await commit_to_points(run, args)
        print(f"draining {args.backlog} outbox rows ...\n", flush=True)
        settings = run.payment_settings(
            events_topic=run.drain_topic, outbox_batch_size=args.batch_size
        )
        drains = [
            await drain(settings, PAYMENT_DB, args.backlog, relays, args.settle_seconds)
            for relays in (1, 2)
        ]
        print("the HTTP floor: a bare ASGI app at the same rates ...\n", flush=True)
        floor = await http_floor(args)
    finally:
        await delete_topics(bootstrap_servers, run)
    rows = [m.row for m in measured]
    cpu = [m.cpu for m in measured]
    print_table(rows, list(rows[0]))
    print("\nCPU over each steady run, % of one core:")
    print_table(cpu, list(dict.fromkeys(key for row in cpu for key in row)))
    print()
    print_table(drains, list(drains[0]))
    print("\nThe HTTP floor (no framework, no work; the same uvicorn, client and rates):")
    print_table(floor, list(floor[0]))
    print()
    for line in verdicts(rows, drains):
        print(line)
    path = write_json(
        "events",
        {
            "keep_cpus_busy": args.keep_cpus_busy,
            "commit_to_points": rows,
            "cpu": cpu,
            "drain": drains,
            "http_floor": floor,
            "verdicts": verdicts(rows, drains),
        },
    )
    print(f"JSON: {path}")


@contextlib.contextmanager
def spinners(count: int) -> Iterator[None]:
    """`count` busy loops at the lowest priority while the block runs: no core ever idles.

    At a steady 500/s the cores idle between payments, and on this VM a payment then costs
    0.2-0.3 ms more CPU than when no core idles (why is not settled: raising the guest's
    halt polling did not change it; README, "Sixth round"). The spinners take the idle time
    (and a little of the rest: the machine is then 100 % busy and latencies grow), so what
    is left is closer to the code's own cost.
    """
    loops = [
        subprocess.Popen(
            ["nice", "-n", "19", sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[500, 400, 300], help="payments per second, each"
    )
    parser.add_argument("--seconds", type=float, default=20, help="length of each steady run")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--replicas", type=int, default=1, help="payment service processes")
    parser.add_argument("--connections", type=int, default=200, help="HTTP connections at most")
    parser.add_argument("--backlog", type=int, default=50_000, help="outbox rows to drain")
    parser.add_argument("--batch-size", type=int, default=500, help="the relay's batch size")
    parser.add_argument("--settle-seconds", type=float, default=180, help="give up after this")
    parser.add_argument("--payment-port", type=int, help="first payment replica's port (free)")
    parser.add_argument("--points-port", type=int, help="the points service's port (free)")
    parser.add_argument(
        "--keep-cpus-busy",
        action="store_true",
        help="busy loops at the lowest priority during the steady runs: CPU without idle wake-ups",
    )
    uvloop.run(main(parser.parse_args()))  # the load generator's CPU is the system's loss
