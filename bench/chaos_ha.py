"""`make chaos-ha`: the high-availability faults under load, against the running system.

Start it with `KAFKA_BROKERS=3 LOCK_REDIS_NODES=3 PAYMENT_REPLICAS=2 make up` (and
POINTS_WORKERS=2 for the points-worker row) and run this with the same settings. Each
scenario pays through HAProxy from concurrent clients that retry as real clients do (same
order_id, after a transport error, a 409 REQUEST_IN_PROGRESS or a 503), kills one thing by
pid a quarter of the way in, brings it back, then waits for `make audit` to pass (every
balance = its ledger, each payment once, every event applied once as points) and counts the
dead letters. A table on stdout, JSON in bench/results/; exit 1 when money or an event was
lost or doubled, or a payment failed for good. What the clients saw before their 201 is
counted apart before and after the kill.
"""

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from bench.report import print_table, write_json
from services.audit import AuditReport, run_audit
from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import CreditWallet
from services.payment.settings import PaymentSettings
from services.points.dlt import read_all
from services.points.settings import PointsSettings

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("MOCKPAY_STATE_DIR", REPO / ".local"))
USERS = 20
PAYMENTS = int(os.environ.get("CHAOS_PAYMENTS", "300"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "16"))
ATTEMPTS = 30
AUDIT_SECONDS = float(os.environ.get("CHAOS_AUDIT_SECONDS", "180"))


@dataclass
class Fault:
    name: str
    inject: Callable[[], str]  # what was killed
    heal: Callable[[], None]


def infra(*command: str) -> None:
    subprocess.run(["bash", "scripts/infra.sh", *command], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def kill_pid_file(path: Path) -> int:
    pid = int(path.read_text())
    os.kill(pid, signal.SIGKILL)
    return pid


async def partition_leader(settings: PaymentSettings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([settings.events_topic])
        return int(described["partitions"][0]["leader"])
    finally:
        await admin.close()


def supervised_pid(name: str) -> int:
    out = subprocess.run(["bash", "scripts/services.sh", "status"], cwd=REPO,
                         capture_output=True, text=True).stdout  # fmt: skip
    for line in out.splitlines():
        if line.startswith(f"{name} ") and "RUNNING" in line:
            return int(line.split("pid", 1)[1].split(",")[0])
    raise SystemExit(f"{name} is not RUNNING under supervisord; start the HA system first")


def lock_nodes_killer(nodes: tuple[int, ...]) -> Fault:
    def inject() -> str:
        pids = [kill_pid_file(STATE / "redis-lock" / f"node-{n}" / "redis.pid") for n in nodes]
        return "pid " + ", ".join(map(str, pids))

    def heal() -> None:
        for n in nodes:
            infra("lock-node-up", str(n))

    majority = " (majority lost: row locks)" if len(nodes) > 1 else ""
    return Fault(f"kill -9 {len(nodes)} of 3 lock nodes{majority}", inject, heal)


def broker_killer(leader: int) -> Fault:
    def inject() -> str:
        return f"pid {kill_pid_file(STATE / 'kafka-cluster' / f'node-{leader}' / 'kafka.pid')}"

    return Fault(
        f"kill -9 Kafka broker {leader}, leader of partition 0",
        inject,
        lambda: infra("kafka-node-up", str(leader)),
    )


def replica_killer() -> Fault:
    def inject() -> str:
        pid = supervised_pid("payment-1")
        os.kill(pid, signal.SIGKILL)
        return f"pid {pid}"

    return Fault("kill -9 payment replica 1 of 2", inject, lambda: None)  # supervisord restarts


def points_worker_killer(workers: int) -> Fault:
    """The other workers take its partitions; supervisord starts it again and it rejoins."""

    def inject() -> str:
        pid = supervised_pid("points-1")
        os.kill(pid, signal.SIGKILL)
        return f"pid {pid}"

    return Fault(f"kill -9 points worker 1 of {workers}", inject, lambda: None)


def faults(leader: int) -> list[Fault]:
    workers = PointsSettings().points_workers
    return [broker_killer(leader), lock_nodes_killer((1,)), lock_nodes_killer((1, 2)),
            replica_killer(),
            *([points_worker_killer(workers)] if workers > 1 else [])]  # fmt: skip


class Clients:
    def __init__(self, client: httpx.AsyncClient, users: list[str], count: int) -> None:
        self.client = client
        self.users = users
        self.count = count
        self.done = 0
        # What the clients saw before a 201, before and after the fault: an error before it
        # is left over from the scenario before (a wallet still locked, a broker electing).
        self.before: Counter[str] = Counter()
        self.after: Counter[str] = Counter()
        self.retries = self.before
        self.failed = 0
        self.quarter = asyncio.Event()

    def finished_one(self) -> None:
        self.done += 1
        if self.done >= self.count // 4:
            self.quarter.set()

    async def pay(self, i: int) -> None:
        body = {"order_id": f"chaos-{uuid.uuid4().hex}", "user_id": self.users[i % USERS],
                "amount": 100 + i % 7}  # fmt: skip
        for _ in range(ATTEMPTS):
            try:
                answer = await self.client.post("/payments", json=body)
            except httpx.TransportError as exc:
                self.retries[f"transport {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)  # a client's back-off before it tries again
                continue
            if answer.status_code in (409, 503):
                code = answer.json().get("code", "") if answer.content.startswith(b"{") else ""
                self.retries[f"{answer.status_code} {code}".strip()] += 1
                await asyncio.sleep(float(answer.headers.get("retry-after", "0.5")))
                continue
            self.finished_one()
            if answer.status_code != 201:
                self.failed += 1
            return
        self.failed += 1
        self.finished_one()

    async def run(self, fault: Fault) -> str:
        gate = asyncio.Semaphore(CLIENTS)

        async def limited(i: int) -> None:
            async with gate:
                await self.pay(i)

        load = asyncio.gather(*(limited(i) for i in range(self.count)))
        await self.quarter.wait()
        killed = fault.inject()
        self.retries = self.after
        await load
        fault.heal()
        return killed


def seen(retries: Counter[str]) -> str:
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(retries.items())) or "0"


async def dead_letters(settings: PaymentSettings) -> int:
    return len(await read_all(settings.kafka_bootstrap_servers, settings.dead_letter_topic))


async def audited(deadline: float) -> AuditReport:
    """The audit, again until it passes with nothing in flight: every payment's points
    applied, not merely younger than the audit's grace period (a killed points worker's
    partitions wait out its session first)."""
    while True:
        report = await run_audit()
        if (report.ok and not report.in_flight_total) or time.monotonic() > deadline:
            return report
        await asyncio.sleep(2)


async def main() -> int:
    settings = PaymentSettings()
    front = f"http://{settings.payment_host}:{settings.payment_port}"
    key = settings.api_keys()[0].split(":")[0]
    users = [f"chaos-{uuid.uuid4().hex[:10]}" for _ in range(USERS)]
    rows = []
    async with httpx.AsyncClient(
        base_url=front, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as client:
        for user in users:
            created = await client.post("/wallets", json={"user_id": user})
            assert created.status_code in (200, 201), created.text
        async with operator_payments(settings) as service:
            for user in users:
                await service.credit(CreditWallet(user, 10**9, f"chaos-seed-{user}"))
        dead_before = await dead_letters(settings)
        for fault in faults(await partition_leader(settings)):
            clients = Clients(client, users, PAYMENTS)
            started = time.monotonic()
            killed = await clients.run(fault)
            report = await audited(time.monotonic() + AUDIT_SECONDS)
            dead = await dead_letters(settings)
            rows.append({
                "scenario": fault.name, "killed": killed, "payments": PAYMENTS,
                "failed": clients.failed, "seen before the kill": seen(clients.before),
                "seen after the kill": seen(clients.after),
                "audit": "ok" if report.ok else "FAILED", "new_dead_letters": dead - dead_before,
                "seconds": round(time.monotonic() - started, 1),
            })  # fmt: skip
            dead_before = dead
            print(f"  done: {fault.name}", flush=True)
            if not report.ok:
                print(report.text())
    print_table(rows, list(rows[0]))
    print(f"\nJSON: {write_json('chaos-ha', {'runs': rows})}")
    bad = any(r["failed"] or r["audit"] != "ok" or r["new_dead_letters"] for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
