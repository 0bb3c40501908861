"""`make chaos`: one fault at a time against the running system (`make up`), healed without a human.

For each scenario: retrying clients load the system (payments, some cancellations, top-ups),
the fault is injected, the system heals by itself (supervisord restarts services; servers
this checkout started are restarted the way an init system would), the load stops, and then
the checks run:
- money: every wallet's balance is what the clients' own answers add up to;
- events: every user's points are floor(rate x amount) over their completed, uncancelled
  payments, and no new dead letter appeared on the DLT;
- the invariant audit (`python -m services.audit`): balance = ledger sum, one debit per
  completed payment, one refund per cancelled, no PENDING charge left, points exact. A
  discrepancy the audit found before chaos started is reported once and not counted.

Clients retry the same body on connection errors, 5xx, 409 REQUEST_IN_PROGRESS and 202
(a charge still PENDING) until they get a final answer, as real clients do; every such
retry is a "client error seen". Processes are found by pid only (supervisorctl, the pid
files under .local) and only on loopback. Exit 1 on any mismatch.

    CHAOS_SCENARIOS=payment-kill,points-kill  make chaos   # a subset (CI: the short mode)
    CHAOS_SECONDS=8 CHAOS_RATE=30 CHAOS_USERS=40           # load per scenario
"""

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.report import print_table, write_json
from services.bank_gateway.settings import FakeBankSettings
from services.payment.settings import PaymentSettings
from services.points.dlt import read_all
from services.points.settings import PointsSettings

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("MOCKPAY_STATE_DIR", REPO / ".local"))
SECONDS = float(os.environ.get("CHAOS_SECONDS", "8"))  # load before and after each fault
RATE = float(os.environ.get("CHAOS_RATE", "30"))  # requests started per second
USERS = int(os.environ.get("CHAOS_USERS", "40"))  # fresh wallets per scenario
REQUEST_DEADLINE = float(os.environ.get("CHAOS_REQUEST_DEADLINE_SECONDS", "90"))
SETTLE_SECONDS = float(os.environ.get("CHAOS_SETTLE_SECONDS", "90"))  # points catch up
SEED = 5_000_000
SERVER_PID_FILES = {
    "mariadb": STATE / "mariadb" / "mysqld.pid",
    "redis": STATE / "redis" / "redis.pid",
    "kafka": STATE / "kafka" / "kafka.pid",
}


# ---------------------------------------------------------------- the system


@dataclass
class System:
    payment: str
    points: str
    bank: str
    key: str
    bank_admin: str
    rate_per_mille: int  # points per 1,000 won, from POINTS_RATE (0.01 -> 10)

    @classmethod
    def from_settings(cls) -> "System":
        pay, points, bank = PaymentSettings(), PointsSettings(), FakeBankSettings()
        for host in (pay.payment_host, points.points_host, bank.fake_bank_host):
            if host not in ("127.0.0.1", "localhost", "::1"):
                sys.exit(f"chaos runs on loopback only, not against {host}")
        return cls(
            payment=f"http://{pay.payment_host}:{pay.payment_port}",
            points=f"http://{points.points_host}:{points.points_port}",
            bank=f"http://{bank.fake_bank_host}:{bank.fake_bank_port}",
            key=pay.api_keys()[0],
            bank_admin=bank.fake_bank_admin_token.get_secret_value(),
            rate_per_mille=int(points.points_rate * 1000),
        )

    def points_for(self, amount: int) -> int:
        return amount * self.rate_per_mille // 1000


def service_pid(name: str) -> int:
    conf = STATE / "run" / "supervisord.conf"
    done = subprocess.run(
        [str(REPO / ".venv/bin/supervisorctl"), "-c", str(conf), "pid", name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not done.stdout.strip().isdigit() or int(done.stdout) == 0:
        raise RuntimeError(f"{name} is not running under this checkout's supervisord (make up)")
    return int(done.stdout)


def server_pid(name: str) -> int | None:
    """The pid of a server this checkout started, or None (not ours: chaos leaves it alone)."""
    path = SERVER_PID_FILES[name]
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return
        time.sleep(0.05)


def infra(command: str) -> None:
    subprocess.run(
        ["bash", "scripts/infra.sh", command], cwd=REPO, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# ---------------------------------------------------------------- retrying clients


@dataclass
class Book:
    """What the clients were told: the truth the system must agree with."""

    balance: dict[str, int] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    completed: dict[str, tuple[str, int]] = field(default_factory=dict)  # payment -> user, amount
    requests: int = 0
    errors_seen: int = 0
    unresolved: int = 0


RETRIED = {202, 409, 500, 502, 503, 504}


class Clients:
    def __init__(self, system: System, book: Book) -> None:
        self.system = system
        self.book = book
        self.http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {system.key}"},
            timeout=15,
            limits=httpx.Limits(max_connections=200),
        )

    async def send(
        self, method: str, url: str, body: dict[str, Any] | None = None
    ) -> httpx.Response | None:
        """The final answer, retrying the same body; None if none came before the deadline."""
        self.book.requests += 1
        deadline, pause = time.monotonic() + REQUEST_DEADLINE, 0.2
        while time.monotonic() < deadline:
            try:
                answer = await self.http.request(method, url, json=body)
                if answer.status_code not in RETRIED:
                    return answer
            except httpx.HTTPError:
                pass
            self.book.errors_seen += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
        self.book.unresolved += 1
        return None

    async def open_wallet(self, user: str) -> None:
        await self.send("POST", f"{self.system.payment}/wallets", {"user_id": user})
        await self.charge(user, SEED)

    async def charge(self, user: str, amount: int) -> None:
        body = {"charge_id": f"c-{uuid.uuid4().hex}", "amount": amount}
        answer = await self.send("POST", f"{self.system.payment}/wallets/{user}/charges", body)
        if answer is not None and answer.status_code == 201:
            self.book.balance[user] = self.book.balance.get(user, 0) + amount

    async def pay(self, user: str, amount: int) -> None:
        body = {"order_id": f"o-{uuid.uuid4().hex}", "user_id": user, "amount": amount}
        answer = await self.send("POST", f"{self.system.payment}/payments", body)
        if answer is not None and answer.status_code == 201:
            self.book.balance[user] = self.book.balance.get(user, 0) - amount
            self.book.points[user] = self.book.points.get(user, 0) + self.system.points_for(amount)
            self.book.completed[answer.json()["payment_id"]] = (user, amount)

    async def cancel(self) -> None:
        if not self.book.completed:
            return
        payment_id = random.choice(list(self.book.completed))
        user, amount = self.book.completed.pop(payment_id)
        url = f"{self.system.payment}/payments/{payment_id}/cancel"
        answer = await self.send("POST", url)
        if answer is not None and answer.status_code == 200:
            self.book.balance[user] = self.book.balance.get(user, 0) + amount
            self.book.points[user] = self.book.points.get(user, 0) - self.system.points_for(amount)

    async def close(self) -> None:
        await self.http.aclose()


async def load(clients: Clients, users: list[str], stop: asyncio.Event, charges: float) -> None:
    """Start RATE requests a second until `stop`; then wait for every one to end."""
    running: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        roll = random.random()
        user = random.choice(users)
        if roll < charges:
            work: Coroutine[Any, Any, None] = clients.charge(user, random.randint(1_000, 50_000))
        elif roll < charges + 0.08:
            work = clients.cancel()
        else:
            work = clients.pay(user, random.randint(100, 20_000))
        task = asyncio.create_task(work)
        running.add(task)
        task.add_done_callback(running.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / RATE)
    if running:
        await asyncio.gather(*running)


# ---------------------------------------------------------------- faults


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 120) -> float:
    """Seconds until `check()` held (the timeout if it never did)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(httpx.HTTPError):
            if await check():
                break
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def healthy(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as http:
        return (await http.get(f"{url}/health")).status_code == 200


async def points_flow(system: System, clients: Clients) -> bool:
    """A new payment's points arrive (the whole event path works)."""
    user = f"probe-{uuid.uuid4().hex[:10]}"
    await clients.open_wallet(user)
    await clients.pay(user, 10_000)
    for _ in range(50):
        answer = await clients.http.get(f"{system.points}/points/{user}")
        if answer.status_code == 200 and answer.json()["balance"] == system.points_for(10_000):
            return True
        await asyncio.sleep(0.1)
    return False


async def payment_kill(system: System, clients: Clients) -> float:
    kill(service_pid("payment"))
    return await wait_until(lambda: healthy(system.payment))


async def points_kill(system: System, clients: Clients) -> float:
    kill(service_pid("points"))
    return await wait_until(lambda: points_flow(system, clients))


async def kafka_down(system: System, clients: Clients) -> float:
    pid = server_pid("kafka")
    assert pid is not None
    kill(pid)
    await asyncio.sleep(20)  # the fault's length is the scenario: Kafka gone for 20 s
    await asyncio.to_thread(infra, "kafka-up")
    return await wait_until(lambda: points_flow(system, clients))


async def redis_kill(system: System, clients: Clients) -> float:
    pid = server_pid("redis")
    assert pid is not None
    kill(pid)
    await asyncio.to_thread(infra, "redis-up")  # an init system restarts it at once
    return await wait_until(lambda: healthy(system.payment))


async def mariadb_kill(system: System, clients: Clients) -> float:
    pid = server_pid("mariadb")
    assert pid is not None
    kill(pid)
    await asyncio.sleep(15)  # down for 15 s while events are in flight
    await asyncio.to_thread(infra, "mariadb-up")
    return await wait_until(lambda: points_flow(system, clients))


async def bank_faults(system: System, clients: Clients) -> float:
    admin = {"Authorization": f"Bearer {system.bank_admin}"}
    faults = {"error_rate": 1.0, "latency_ms": 3000}
    await clients.http.put(f"{system.bank}/faults", json=faults, headers=admin)
    await asyncio.sleep(15)
    await clients.http.put(f"{system.bank}/faults", json={}, headers=admin)

    async def charge_succeeds() -> bool:
        user = f"probe-{uuid.uuid4().hex[:10]}"
        await clients.send("POST", f"{system.payment}/wallets", {"user_id": user})
        body = {"charge_id": f"c-{uuid.uuid4().hex}", "amount": 1_000}
        answer = await clients.http.post(f"{system.payment}/wallets/{user}/charges", json=body)
        return answer.status_code == 201

    return await wait_until(charge_succeeds)


async def inflight_charge_kill(system: System, clients: Clients) -> float:
    """kill -9 while a charge's bank call is in flight; time from restart to its answer."""
    admin = {"Authorization": f"Bearer {system.bank_admin}"}
    user = f"inflight-{uuid.uuid4().hex[:8]}"
    await clients.send("POST", f"{system.payment}/wallets", {"user_id": user})
    await clients.http.put(f"{system.bank}/faults", json={"latency_ms": 2500}, headers=admin)
    before = (await clients.http.get(f"{system.bank}/stats")).json()["transfer_requests"]
    body = {"charge_id": f"c-{uuid.uuid4().hex}", "amount": 70_000}
    url = f"{system.payment}/wallets/{user}/charges"
    first = asyncio.create_task(clients.http.post(url, json=body))

    async def at_bank() -> bool:
        stats = (await clients.http.get(f"{system.bank}/stats")).json()
        return bool(stats["transfer_requests"] > before)

    await wait_until(at_bank, 30)
    kill(service_pid("payment"))
    with contextlib.suppress(httpx.HTTPError):
        await first
    await clients.http.put(f"{system.bank}/faults", json={}, headers=admin)
    await wait_until(lambda: healthy(system.payment))

    async def answered() -> bool:
        return (await clients.http.post(url, json=body)).status_code not in RETRIED

    seconds = await wait_until(answered)
    final = await clients.http.post(url, json=body)
    if final.status_code == 201:
        clients.book.balance[user] = 70_000
    after = (await clients.http.get(f"{system.bank}/stats")).json()["transfer_requests"]
    if after != before + 1:
        clients.book.unresolved += 1  # the transfer was sent again: shown as a failure
    return seconds


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Callable[[System, Clients], Awaitable[float]]
    needs_server: str | None = None
    charges: float = 0.05  # share of top-ups in the load


SCENARIOS = [
    Scenario("payment-kill", payment_kill),
    Scenario("points-kill", points_kill),
    Scenario("kafka-down-20s", kafka_down, "kafka"),
    Scenario("redis-kill", redis_kill, "redis"),
    Scenario("mariadb-kill-15s", mariadb_kill, "mariadb"),
    Scenario("bank-errors-and-3s-latency", bank_faults, charges=0.3),
    Scenario("kill-during-charge", inflight_charge_kill, charges=0.0),  # its own charge only
]


# ---------------------------------------------------------------- checks


async def money_mismatches(clients: Clients) -> int:
    wrong = 0
    for user, expected in clients.book.balance.items():
        answer = await clients.http.get(f"{clients.system.payment}/wallets/{user}")
        if answer.status_code != 200 or answer.json()["balance"] != expected:
            wrong += 1
            print(f"    money: {user} has {answer.text}, clients expect {expected}", flush=True)
    return wrong


async def event_mismatches(clients: Clients) -> int:
    async def points_of(user: str) -> int:
        answer = await clients.http.get(f"{clients.system.points}/points/{user}")
        return int(answer.json()["balance"]) if answer.status_code == 200 else 0

    async def all_match() -> bool:
        for user, expected in clients.book.points.items():
            if await points_of(user) != expected:
                return False
        return True

    await wait_until(all_match, SETTLE_SECONDS)
    wrong = 0
    for user, expected in clients.book.points.items():
        if (got := await points_of(user)) != expected:
            wrong += 1
            print(f"    points: {user} has {got}, clients expect {expected}", flush=True)
    return wrong


async def dead_letters() -> int:
    settings = PointsSettings()
    return len(await read_all(settings.kafka_bootstrap_servers, settings.dead_letter_topic))


Finding = tuple[str, tuple[tuple[str, str], ...]]


def audit() -> set[Finding] | None:
    """The audit's discrepancies (None if it could not run)."""
    done = subprocess.run(
        [sys.executable, "-m", "services.audit", "--json"], cwd=REPO,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        return None
    report = json.loads(done.stdout)
    return {
        (found["check"], tuple(sorted((k, str(v)) for k, v in found["ids"].items())))
        for found in report["discrepancies"]
    }


async def run(scenario: Scenario, system: System, baseline: set[Finding]) -> dict[str, Any]:
    book = Book()
    clients = Clients(system, book)
    users = [f"chaos-{uuid.uuid4().hex[:8]}-{i}" for i in range(USERS)]
    try:
        await asyncio.gather(*(clients.open_wallet(u) for u in users))
        dead_before = await dead_letters()
        stop = asyncio.Event()
        loader = asyncio.create_task(load(clients, users, stop, scenario.charges))
        await asyncio.sleep(SECONDS)  # the fault lands on a system under load
        recovered = await scenario.fault(system, clients)
        await asyncio.sleep(SECONDS)
        stop.set()
        await loader
        money = await money_mismatches(clients)
        events = await event_mismatches(clients)
        new_dead = await dead_letters() - dead_before
        found = await asyncio.to_thread(audit)
        new_findings = None if found is None else found - baseline
        if new_findings:
            for finding in sorted(new_findings)[:10]:
                print(f"    audit: {finding}", flush=True)
    finally:
        await clients.close()
    return {
        "scenario": scenario.name,
        "requests": book.requests,
        "client_errors_seen": book.errors_seen,
        "unresolved": book.unresolved,
        "recovered_s": round(recovered, 1),
        "money_mismatches": money,
        "event_mismatches": events,
        "new_dead_letters": new_dead,
        "audit": "could not run" if new_findings is None else f"{len(new_findings)} new",
        "failed": bool(
            money or events or new_dead or book.unresolved or new_findings is None or new_findings
        ),
    }


async def main() -> int:
    system = System.from_settings()
    wanted = os.environ.get("CHAOS_SCENARIOS", "")
    chosen = [s for s in SCENARIOS if not wanted or s.name in wanted.split(",")]
    if not await healthy(system.payment):
        sys.exit(f"the system is not up at {system.payment}: run make up first")
    baseline = await asyncio.to_thread(audit)
    if baseline is None:
        sys.exit("the audit cannot read the databases")
    if baseline:
        print(f"(the audit found {len(baseline)} discrepancies before chaos; only new ones count)")
    rows = []
    started = time.monotonic()
    for scenario in chosen:
        if scenario.needs_server and server_pid(scenario.needs_server) is None:
            print(f"- {scenario.name}: skipped, {scenario.needs_server} was not started here")
            continue
        print(f"- {scenario.name} ...", flush=True)
        rows.append(await run(scenario, system, baseline))
        print(f"  {rows[-1]}", flush=True)
    columns = [
        "scenario", "requests", "client_errors_seen", "unresolved", "recovered_s",
        "money_mismatches", "event_mismatches", "new_dead_letters", "audit",
    ]  # fmt: skip
    print(f"\nchaos: {len(rows)} scenario(s) in {time.monotonic() - started:.0f} s\n")
    print_table(rows, columns)
    print(f"\nJSON: {write_json('chaos', {'runs': rows})}")
    return 1 if any(row["failed"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
