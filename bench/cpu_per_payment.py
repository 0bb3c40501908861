"""CPU per payment of the payment app, measured in-process: `make bench-cpu`.

On a shared machine the CPU time of a process per payment moves by a fifth from run to
run (the other work slows every core), which hides cuts of a few percent. This measures
what a cut changes and little else: the payment app (lifespan, pools, lock, idempotency,
outbox relay) runs in this process and is called through raw ASGI (no HTTP server, no
client library), C clients pay over W wallets, and the process's own CPU time (user and
kernel, from `getrusage`; the kernel's share apart) is divided by the payments. Its
database and topics are dropped at the end. To compare two versions, run this from
both checkouts at the same time (`git worktree add /tmp/old <commit>`): they share
whatever else the machine is doing.

By default C clients pay as fast as answers come back (closed loop). With `--rate R` a
payment starts every 1/R s whatever the answers take (open loop, as `make bench-events`
sends them over HTTP): the same code, in the same process, without HTTP, at the load of
a steady rate, where the process idles between payments instead of always having the
next one ready. The two figures side by side separate what a payment costs from what
serving a steady trickle of them costs.

    python -m bench.cpu_per_payment [--payments 2000] [--rounds 3] [--rate R] [--profile FILE]
"""

import argparse
import asyncio
import cProfile
import logging
import random
import resource
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import uvloop

from bench.hot import delete_topics
from bench.report import print_table, write_json
from services.payment.domain.commands import CreditWallet
from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings
from shared import db
from shared.kafka import ensure_topics, topic_specs
from shared.serve import tune_gc

START_BALANCE = 10**12


def payment_scope(body: bytes, authorization: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/payments", "raw_path": b"/payments", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"bench"), (b"content-type", b"application/json"),
            (b"authorization", authorization), (b"content-length", str(len(body)).encode()),
        ],
    }  # fmt: skip


async def call(app: Any, body: bytes, authorization: bytes) -> int:
    """POST /payments straight into the ASGI app; its status."""
    delivered = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(payment_scope(body, authorization), receive, send)
    return status


class Payers:
    def __init__(self, app: Any, authorization: bytes, tag: str, wallets: int) -> None:
        self.app = app
        self.authorization = authorization
        self.tag = tag
        self.wallets = wallets
        self.orders = 0
        self.statuses: Counter[int] = Counter()

    async def pay(self, payments: int, clients: int, rate: float = 0.0) -> None:
        """`payments` payments from `clients` closed-loop clients, or at `rate` a second."""
        if rate:
            await self._paced(payments, rate)
            return
        left = payments

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self._one()

        await asyncio.gather(*(client() for _ in range(clients)))

    async def _paced(self, payments: int, rate: float) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks = []
        for i in range(payments):
            delay = started + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule: open loop, as bench/events.py
            tasks.append(asyncio.ensure_future(self._one()))
        await asyncio.gather(*tasks)

    async def _one(self) -> None:
        self.orders += 1
        body = orjson.dumps(
            {
                "order_id": f"cpu-{self.tag}-{self.orders}",
                "user_id": f"cpu-{self.tag}-{random.randrange(self.wallets)}",
                "amount": random.randint(1, 1000),
            }
        )
        self.statuses[await call(self.app, body, self.authorization)] += 1


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    tag = uuid.uuid4().hex[:8]
    database = f"{PaymentSettings().payment_mysql_database}_cpu_{tag}"
    topic = f"bench.cpu.{tag}"
    settings = PaymentSettings(
        payment_mysql_database=database, events_topic=topic, dead_letter_topic=f"{topic}.DLT"
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers, topic_specs(settings, topic, f"{topic}.DLT")
    )
    await execute(settings, f"CREATE DATABASE `{database}`")
    rows = []
    try:
        app = create_app(settings)
        tune_gc(settings.gc_gen0_threshold)  # as shared.serve does for the real service
        async with app.router.lifespan_context(app):
            service = app.state.components.service
            for n in range(args.wallets):
                await service.create_wallet(f"cpu-{tag}-{n}")
                await service.credit(CreditWallet(f"cpu-{tag}-{n}", START_BALANCE, f"seed-{n}"))
            payers = Payers(app, f"Bearer {settings.api_keys()[0]}".encode(), tag, args.wallets)
            await payers.pay(args.payments // 2, args.clients)  # warm-up
            load = f"{args.rate:g}/s" if args.rate else f"{args.clients} clients"
            for round_ in range(1, args.rounds + 1):
                before = resource.getrusage(resource.RUSAGE_SELF)
                await payers.pay(args.payments, args.clients, args.rate)
                after = resource.getrusage(resource.RUSAGE_SELF)
                user = (after.ru_utime - before.ru_utime) / args.payments * 1000
                kernel = (after.ru_stime - before.ru_stime) / args.payments * 1000
                rows.append(
                    {
                        "round": round_,
                        "load": load,
                        "payments": args.payments,
                        "cpu ms": round(user + kernel, 3),
                        "of it kernel ms": round(kernel, 3),
                    }
                )
            if args.profile:
                # CPU time, not wall time: a profile of wall time on a busy machine blames
                # whatever call was running when the process lost its core (socket writes).
                profile = cProfile.Profile(time.process_time)
                profile.enable()
                await payers.pay(args.payments, args.clients, args.rate)
                profile.disable()
                profile.dump_stats(args.profile)
            errors = {s: c for s, c in payers.statuses.items() if s != 201}
    finally:
        await execute(settings, f"DROP DATABASE IF EXISTS `{database}`")
        await delete_topics(settings.kafka_bootstrap_servers, [topic, f"{topic}.DLT"])
    load = f"at {args.rate:g} payments/s" if args.rate else f"{args.clients} clients"
    print(f"\nbench-cpu: {load} over {args.wallets} wallets, in-process\n")
    print_table(rows, list(rows[0]))
    print(f"\nmin {min(r['cpu ms'] for r in rows)} ms per payment; non-201 answers: {errors or 0}")
    path = write_json(
        args.name, {"rate": args.rate, "clients": args.clients, "runs": rows, "errors": errors}
    )
    print(f"JSON: {path}")


async def execute(settings: PaymentSettings, sql: str) -> None:
    conn = await db.connect(settings)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=2000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64, help="closed-loop clients")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="payments a second, open loop (0: closed loop)"
    )
    parser.add_argument("--wallets", type=int, default=1000)
    parser.add_argument("--profile", help="cProfile one more round into this file")
    parser.add_argument("--name", default="cpu", help="the JSON file: bench/results/NAME.json")
    uvloop.run(main(parser.parse_args()))
