"""Hot wallets over HTTP: `make bench-hot` (python -m bench.hot --help).

Through the real payment service (auth, idempotency, lock, outbox, relay to Kafka, points
consuming), closed loop: every client sends its next payment when the last one answered.

- hot P:N   P clients pay N payments in all from ONE wallet (the issue's 150 x 1,000 and
            500 x 3,000 tests);
- spread C:W:S  C clients pay for S seconds from W wallets chosen at random.

For each: payments/s (201s over the wall time), p50/p99 of the answers, every non-201
status counted, the final balances checked exactly (the start balance minus the amounts
answered 201, and the wallet equal to its ledger's sum), and the CPU of each process per
payment (from /proc: the payment service, points, the load generator, and MariaDB/Redis/
Kafka when their pid files are found, MOCKPAY_STATE_DIR).

The run has databases of its own (`<PAYMENT_MYSQL_DATABASE>_hotbench` and `..._points`,
dropped and created at the start) and per-run topics; it uses the configured Redis
database with ids tagged by the run, so it never flushes anything. `--env KEY=VALUE`
passes settings to the payment service (compare variants in one run, not across runs).
"""

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiomysql
import uvloop
from aiokafka.admin import AIOKafkaAdminClient

from bench.cpu import CpuSample, infra_pids
from bench.lean_http import LeanClient
from bench.report import percentile, print_table, write_json
from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from shared import db
from shared.kafka import ensure_topics, topic_specs
from testkit.processes import ports, service_process

START_BALANCE = 10**12
MAX_AMOUNT = 1000


@dataclass
class Run:
    tag: str
    payment_db: str
    points_db: str
    orders: Iterator[int] = field(default_factory=itertools.count)
    paid: Counter = field(default_factory=Counter)  # wallet -> amount answered 201, all tests

    @classmethod
    def new(cls) -> "Run":
        base = PaymentSettings().payment_mysql_database
        return cls(uuid.uuid4().hex[:8], f"{base}_hotbench", f"{base}_hotbench_points")

    @property
    def events_topic(self) -> str:
        return f"bench.hot.events.{self.tag}"

    def wallet(self, n: int) -> str:
        return f"hot-{self.tag}-{n}"

    def settings(self) -> PaymentSettings:
        return PaymentSettings(
            payment_mysql_database=self.payment_db,
            events_topic=self.events_topic,
            dead_letter_topic=f"{self.events_topic}.DLT",
        )


async def start_clean(run: Run) -> None:
    settings = run.settings()
    conn = await db.connect(settings)
    try:
        async with conn.cursor() as cur:
            for name in (run.payment_db, run.points_db):
                await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                await cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()


async def credit_wallets(run: Run, wallets: int) -> None:
    async with operator_payments(run.settings()) as payments:
        gate = asyncio.Semaphore(20)

        async def credit(n: int) -> None:
            async with gate:
                await payments.create_wallet(run.wallet(n))
                await payments.credit(CreditWallet(run.wallet(n), START_BALANCE, f"seed-{n}"))

        await asyncio.gather(*(credit(n) for n in range(wallets)))


@contextlib.contextmanager
def services(
    run: Run, extra_env: dict[str, str], profile: str | None = None
) -> Iterator[tuple[int, dict[str, int]]]:
    """The payment service and the points service: the payment port, and both pids."""
    free = ports("payment", "points")
    common = {
        "EVENTS_TOPIC": run.events_topic,
        "DEAD_LETTER_TOPIC": f"{run.events_topic}.DLT",
        "LOG_LEVEL": "WARNING",
    }
    payment_env = {
        **common,
        "PAYMENT_PORT": str(free["payment"]),
        "PAYMENT_MYSQL_DATABASE": run.payment_db,
        **extra_env,
    }
    with contextlib.ExitStack() as stack:
        points_env = {
            **common,
            "POINTS_PORT": str(free["points"]),
            "POINTS_MYSQL_DATABASE": run.points_db,
            "POINTS_GROUP_ID": f"bench-hot-{run.tag}",
            "POINTS_DATA_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
        }
        url = f"http://127.0.0.1:{free['payment']}/health"
        profiled = ("-m", "cProfile", "-o", profile) if profile else ()
        payment = stack.enter_context(
            service_process("services.payment", payment_env, url, python_args=profiled)
        )
        url = f"http://127.0.0.1:{free['points']}/health"
        points = stack.enter_context(service_process("services.points", points_env, url))
        yield free["payment"], {"payment": payment.pid, "points": points.pid}
        if profile:  # cProfile writes its file on SIGINT; uvicorn re-raises SIGTERM and dies
            payment.send_signal(signal.SIGINT)
            payment.wait(60)


@dataclass
class Load:
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


async def closed_loop(
    client: LeanClient, run: Run, clients: int, wallets: int, payments: int, seconds: float
) -> Load:
    """`clients` loops paying from random wallets until `payments` were sent or time is up."""
    load = Load()
    sent = 0
    deadline = time.monotonic() + seconds

    async def loop(index: int) -> None:
        nonlocal sent
        while sent < payments and time.monotonic() < deadline:
            sent += 1
            wallet = run.wallet(random.randrange(wallets))
            amount = random.randint(1, MAX_AMOUNT)
            body = {
                "order_id": f"o-{run.tag}-{next(run.orders)}",
                "user_id": wallet,
                "amount": amount,
            }
            started = time.perf_counter()
            status = await client.post("/payments", body)
            load.latencies.append(time.perf_counter() - started)
            load.statuses[status] += 1
            if status == 201:
                run.paid[wallet] += amount

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    load.seconds = time.perf_counter() - started
    return load


async def balances_exact(pool: aiomysql.Pool, run: Run) -> tuple[bool, str]:
    """Every wallet touched: balance == start - paid, and == its ledger's sum."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT w.user_id, w.balance, COALESCE(SUM(l.delta), 0) FROM wallets w"
            " LEFT JOIN ledger_entries l ON l.user_id = w.user_id GROUP BY w.user_id, w.balance"
        )
        rows = {user: (balance, ledger) for user, balance, ledger in await cur.fetchall()}
        await cur.execute("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM payments")
        payments, orders = await cur.fetchone()
        await conn.rollback()
    problems = []
    for user, (balance, ledger) in rows.items():
        expected = START_BALANCE - run.paid.get(user, 0)
        if balance != expected or ledger != balance:
            problems.append(f"{user}: balance {balance}, ledger {ledger}, expected {expected}")
    if payments != orders:
        problems.append(f"{payments} payment rows for {orders} orders")
    return not problems, "; ".join(problems[:3])


async def scenario(
    name: str,
    client: LeanClient,
    pool: aiomysql.Pool,
    run: Run,
    pids: dict[str, int],
    clients: int,
    wallets: int,
    payments: int,
    seconds: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    cpu = CpuSample.begin(pids)
    load = await closed_loop(client, run, clients, wallets, payments, seconds)
    shares = cpu.end()
    exact, problems = await balances_exact(pool, run)
    ok = load.statuses[201]
    errors = {status: count for status, count in sorted(load.statuses.items()) if status != 201}
    row = {
        "test": name,
        "sent": sum(load.statuses.values()),
        "201": ok,
        "errors": ", ".join(f"{s}: {c}" for s, c in errors.items()) or "0",
        "payments/s": round(ok / load.seconds, 1),
        "p50 ms": round(percentile(load.latencies, 50) * 1000, 1),
        "p99 ms": round(percentile(load.latencies, 99) * 1000, 1),
        "balance exact": "yes" if exact else f"NO: {problems}",
    }
    per_payment: dict[str, Any] = {"test": name}
    for process, share in shares.items():
        if process == "machine busy %":
            per_payment[process] = share
        elif ok:
            per_payment[f"{process} ms"] = round(share / 100 * load.seconds / ok * 1000, 2)
    return row, per_payment


def parse_env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    run = Run.new()
    settings = run.settings()
    topics = [run.events_topic, f"{run.events_topic}.DLT"]
    await ensure_topics(settings.kafka_bootstrap_servers, topic_specs(settings, *topics))
    wallets = max([1, *(int(s.split(":")[1]) for s in args.spread)])
    await start_clean(run)
    await credit_wallets(run, wallets)
    pool = await db.create_pool(settings, run.payment_db)
    rows, cpu = [], []
    try:
        with services(run, parse_env(args.env), args.profile) as (port, pids):
            pids = {**pids, "load generator": os.getpid(), **infra_pids()}
            headers = {"Authorization": f"Bearer {settings.api_keys()[0]}"}
            client = LeanClient("127.0.0.1", port, headers, args.connections)
            try:
                # Warm-up: every HTTP connection opened, so no test pays for TCP handshakes.
                await closed_loop(client, run, args.connections, wallets, 2 * args.connections, 60)
                for spec in args.hot:
                    payers, payments = (int(v) for v in spec.split(":"))
                    name = f"hot {payers} x {payments}"
                    print(f"  {name} ...", flush=True)
                    row, share = await scenario(
                        name, client, pool, run, pids, payers, 1, payments, args.max_seconds
                    )
                    rows.append(row)
                    cpu.append(share)
                for spec in args.spread:
                    clients, count, seconds = spec.split(":")
                    name = f"spread {clients} clients x {count} wallets, {seconds} s"
                    print(f"  {name} ...", flush=True)
                    row, share = await scenario(
                        name, client, pool, run, pids, int(clients), int(count), 10**9,
                        float(seconds),
                    )  # fmt: skip
                    rows.append(row)
                    cpu.append(share)
            finally:
                await client.close()
    finally:
        await db.close_pool(pool)
        await delete_topics(settings.kafka_bootstrap_servers, topics)
    print(f"\nbench-hot {' '.join(args.env)} (2 shared cores: figures are lower bounds)\n")
    print_table(rows, list(rows[0]))
    print("\nCPU per payment (ms of one core), and the machine's busy share:")
    print_table(cpu, list(dict.fromkeys(key for row in cpu for key in row)))
    path = write_json(args.name, {"env": args.env, "runs": rows, "cpu_per_payment": cpu})
    print(f"\nJSON: {path}")


async def delete_topics(bootstrap_servers: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--hot", nargs="*", default=["150:1000", "500:3000"], help="PAYERS:PAYMENTS on one wallet"
    )
    parser.add_argument(
        "--spread", nargs="*", default=["64:1000:20"], help="CLIENTS:WALLETS:SECONDS"
    )
    parser.add_argument("--max-seconds", type=float, default=300, help="cap of a hot test")
    parser.add_argument("--connections", type=int, default=500, help="HTTP connections at most")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the payment service")
    parser.add_argument("--profile", help="cProfile the payment service into this file")
    parser.add_argument("--name", default="hot", help="the JSON file: bench/results/NAME.json")
    uvloop.run(main(parser.parse_args()))  # the load generator's CPU is the system's loss
