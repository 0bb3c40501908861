"""Processes for the takeover tests: a holder (tests/integration/session_holder.py) to kill
or pause by pid, and this test process as a waiter with a session of its own."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from redis.asyncio import Redis

from services.payment.settings import PaymentSettings
from shared.lock import LockService
from shared.lock.counters import LockCounters
from shared.lock.takeover import Takeover
from shared.redis_client import create_session_connection
from shared.session import Session
from testkit.processes import LOGS, REPO

CHECK_AFTER = 0.2  # a waiter asks about the holder after this long, and as often after


@dataclass
class Holder:
    """A session_holder process: what it holds, and its pid to kill or pause."""

    process: asyncio.subprocess.Process
    instance: str = ""
    token: int | str = 0

    async def started(self) -> "Holder":
        said = json.loads(await self.line())
        self.instance, self.token = said["instance"], said["token"]
        return self

    async def line(self) -> str:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        assert line, f"the holder exited: see its log in {LOGS}"
        return line.decode().strip()

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.process.pid, sig)

    async def killed(self) -> None:
        self.signal(signal.SIGKILL)
        await self.process.wait()

    async def ask(self, line: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        return await self.line()


@contextlib.asynccontextmanager
async def holder(*args: str) -> AsyncIterator[Holder]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"session-holder-{os.getpid()}-{time.time_ns()}.log"
    log = await asyncio.to_thread(log_path.open, "wb")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.session_holder", *args,
            cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
    finally:
        log.close()
    try:
        yield await Holder(process).started()
    finally:
        if process.returncode is None:
            process.kill()  # by its pid
            await process.wait()


@dataclass
class Where:
    """Where locks live: the one Redis (no node urls) or three lock nodes."""

    urls: list[str]
    clients: list[Redis]


@dataclass
class Waiter:
    """A process waiting for locks: its lock service, how many it took over, and how often
    a wake-up subscription was not confirmed in time."""

    takeovers: int = 0
    subscription_timeouts: int = 0
    locks: LockService = field(init=False)

    def took_over(self) -> None:
        self.takeovers += 1

    def subscription_timed_out(self) -> None:
        self.subscription_timeouts += 1


@contextlib.asynccontextmanager
async def waiting_process(
    redis: Redis,
    where: Where,
    prefix: str,
    check_after: float = CHECK_AFTER,
    release_retry: float = 1.0,
) -> AsyncIterator[Waiter]:
    """This test process's lock service with a session of its own, counting takeovers."""
    connection = create_session_connection(PaymentSettings())
    session = Session(redis, connection, ttl_seconds=2)
    await session.start()
    waiter = Waiter()
    waiter.locks = LockService(
        where.clients if where.urls else redis, prefix=prefix, node_timeout=1.0,
        takeover=Takeover(session, check_after, waiter.took_over),
        counters=LockCounters(subscription_timeout=waiter.subscription_timed_out),
        release_retry=release_retry,
    )  # fmt: skip
    try:
        yield waiter
    finally:
        await waiter.locks.close()
        await session.stop()
        await connection.aclose()


def lock_args(where: Where, prefix: str, name: str, ttl: float) -> list[str]:
    return ["lock", prefix, name, str(ttl), *where.urls]
