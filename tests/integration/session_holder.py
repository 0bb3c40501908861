"""A process that holds something under its session, for tests to kill or pause by pid.

    python -m tests.integration.session_holder lock PREFIX NAME TTL [NODE_URL ...]
    python -m tests.integration.session_holder record NAMESPACE KEY FINGERPRINT [PAY_JSON]

`lock` takes the lock NAME (on REDIS_URL, or on the given lock nodes) with a session of TTL
seconds; `record` begins an idempotency record for KEY with the service's default session
and lease, keeps the lease renewed and, given a payment (`{"order_id", "user_id",
"amount"}`), makes it first (as a process that dies after its commit).
Either prints one JSON line (`instance`, `token`) once it holds, then waits. A line
`write USER` on stdin (lock mode) makes it write that wallet with its fencing token, as a
holder that resumes after a pause would; it prints `written` or `refused`.
"""

import asyncio
import contextlib
import json
import sys

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.payment.adapters.uow import MySqlUnitOfWork
from services.payment.bootstrap import operator_payments
from services.payment.domain.commands import Pay
from services.payment.domain.errors import ConcurrentUpdate
from services.payment.domain.model import Wallet
from services.payment.settings import PaymentSettings
from shared import db
from shared.clock import utcnow
from shared.idempotency import IdempotencyStore, Started
from shared.lock import LockService
from shared.lock.takeover import Takeover
from shared.redis_client import create_redis, create_session_connection
from shared.session import Session


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def write_with(settings: PaymentSettings, token: int, user: str) -> str:
    pool = await db.create_pool(settings, settings.payment_mysql_database)
    try:
        async with MySqlUnitOfWork(pool, token, False) as uow:
            wallet = await uow.wallets.get(user)
            assert wallet is not None
            await uow.wallets.update_balance(wallet, Wallet(user, wallet.balance + 500), utcnow())
            try:
                await uow.commit()
            except ConcurrentUpdate:
                return "refused"
        return "written"
    finally:
        await db.close_pool(pool)


async def hold_lock(
    redis: Redis, session: Session, prefix: str, name: str, nodes: list[str]
) -> None:
    clients: Redis | list[Redis] = [
        Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=1.0) for url in nodes
    ] or redis
    locks = LockService(clients, prefix=prefix, node_timeout=1.0, takeover=Takeover(session))
    lease = await locks.lock(name).try_lock(wait_time=10)
    assert lease is not None
    say(json.dumps({"instance": session.instance_id, "token": lease.token}))
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "write":
            say(await write_with(PaymentSettings(), lease.token, line[1]))


async def hold_record(redis: Redis, session: Session, args: list[str]) -> None:
    namespace, key, body_print = args[0], args[1], args[2]
    settings = PaymentSettings()
    store = IdempotencyStore(
        redis, namespace, 3600, settings.idempotency_lease_seconds,
        settings.idempotency_lease_renew_seconds, 600, session=session,
    )  # fmt: skip
    started = await store.begin(key, body_print)
    assert isinstance(started, Started), started
    if len(args) > 3:
        async with operator_payments(settings) as service:
            await service.pay(Pay(**json.loads(args[3])))
    async with store.leased(started):
        say(json.dumps({"instance": session.instance_id, "token": started.token}))
        await asyncio.Event().wait()


async def main(mode: str, args: list[str]) -> None:
    settings = PaymentSettings()
    ttl = float(args[2]) if mode == "lock" else settings.payment_instance_ttl_seconds
    redis = create_redis(settings)
    session = Session(redis, create_session_connection(settings), ttl_seconds=ttl)
    await session.start()
    if mode == "lock":
        await hold_lock(redis, session, args[0], args[1], args[3:])
    else:
        await hold_record(redis, session, args)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1], sys.argv[2:]))
