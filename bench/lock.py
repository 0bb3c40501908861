"""Lock strategies on one hot wallet: `make bench-lock` (python -m bench.lock --help).

Every strategy debits one wallet from N concurrent payers. The locks guard a read-modify-write
(SELECT the balance, UPDATE it to the new value, COMMIT); SELECT ... FOR UPDATE does the same
with a row lock; the conditional UPDATE needs no read; the no-lock read-modify-write shows
the lost updates the seed started from. The batched rows are the payment service's default:
queued debits of one wallet applied in one transaction per lock hold (service_layer/
batching.py), one read, one write and one commit per batch. Each is compared with the
database's own ceiling: a serial loop of one conditional UPDATE + COMMIT. Redis commands are
counted from INFO commandstats deltas: script calls (EVALSHA/EVAL, each once), SET (the
polling lock's acquire), SUBSCRIBE, UNSUBSCRIBE and PUBLISH; for the quorum lock they are
summed over its three nodes (LOCK_REDIS_BASE_PORT and up, started by `make bench-lock`).
"""

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiomysql
from redis.asyncio import Redis

from bench.report import percentile, print_table, write_json
from services.payment.bootstrap import lock_nodes as service_lock_nodes
from services.payment.settings import PaymentSettings
from shared import db
from shared.batching import Batcher
from shared.lock import LockService
from shared.redis_client import create_redis
from shared.settings import ServiceSettings

COUNTED_COMMANDS = ("evalsha", "eval", "set", "subscribe", "unsubscribe", "publish")
START_BALANCE = 10**15
AMOUNT = 1
BATCH_MAX = PaymentSettings.model_fields["payment_batch_max"].default
SCHEMA = "CREATE TABLE IF NOT EXISTS bench_wallets (id INT PRIMARY KEY, balance BIGINT NOT NULL)"

Debit = Callable[[aiomysql.Connection], Awaitable[None]]


async def read_modify_write(conn: aiomysql.Connection, for_update: bool = False) -> None:
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT balance FROM bench_wallets WHERE id = 1" + (" FOR UPDATE" if for_update else "")
        )
        (balance,) = await cur.fetchone()
        await cur.execute("UPDATE bench_wallets SET balance = %s WHERE id = 1", (balance - AMOUNT,))
    await conn.commit()


async def debit_many(conn: aiomysql.Connection, total: int) -> None:
    """A batch: one read, one write and one commit for all its debits."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT balance FROM bench_wallets WHERE id = 1")
        (balance,) = await cur.fetchone()
        await cur.execute("UPDATE bench_wallets SET balance = %s WHERE id = 1", (balance - total,))
    await conn.commit()


async def conditional_update(conn: aiomysql.Connection) -> None:
    async with conn.cursor() as cur:
        await cur.execute(
            "UPDATE bench_wallets SET balance = balance - %s WHERE id = 1 AND balance >= %s",
            (AMOUNT, AMOUNT),
        )
    await conn.commit()


@dataclass
class Strategy:
    name: str
    pay: Callable[[int], Awaitable[None]]  # payer index -> one payment
    close: Callable[[], Awaitable[None]] | None = None
    on_lock_nodes: bool = False  # its Redis commands go to the quorum's nodes


def strategies(
    pool: aiomysql.Pool, redis: Redis, lock_nodes: list[Redis]
) -> list[Callable[[], Strategy]]:
    async def with_conn(debit: Debit) -> None:
        async with pool.acquire() as conn:
            await debit(conn)

    def pubsub_lock(
        name: str, replicas: int, local_queue: bool, on: Redis | list[Redis] = redis
    ) -> Callable[[], Strategy]:
        def make() -> Strategy:
            services = [LockService(on, local_queue=local_queue) for _ in range(replicas)]

            async def pay(payer: int) -> None:
                async with services[payer % replicas].hold("bench:wallet:1", wait_time=600):
                    await with_conn(read_modify_write)

            async def close() -> None:
                for service in services:
                    await service.close()

            return Strategy(name, pay, close, on_lock_nodes=on is not redis)

        return make

    def batched_lock(name: str, replicas: int) -> Callable[[], Strategy]:
        """The payment service's default: queued debits applied in batches, one commit each."""

        def make() -> Strategy:
            services = [LockService(redis) for _ in range(replicas)]

            def batcher(service: LockService) -> Batcher[int, None]:
                async def run(key: str, amounts: list[int]) -> list[None | Exception]:
                    async with service.hold(key, wait_time=600), pool.acquire() as conn:
                        await debit_many(conn, sum(amounts))
                    return [None] * len(amounts)

                return Batcher(run, max_size=BATCH_MAX)

            batchers = [batcher(service) for service in services]

            async def pay(payer: int) -> None:
                await batchers[payer % replicas].submit("bench:wallet:1", AMOUNT)

            async def close() -> None:
                for service in services:
                    await service.close()

            return Strategy(name, pay, close)

        return make

    def polling_lock() -> Strategy:
        async def pay(payer: int) -> None:
            async with redis.lock("bench:polling:wallet:1", timeout=30, blocking_timeout=600):
                await with_conn(read_modify_write)

        return Strategy("redis-py Lock (polls every 0.1 s)", pay)

    def simple(name: str, debit: Debit) -> Callable[[], Strategy]:
        async def pay(payer: int) -> None:
            await with_conn(debit)

        return lambda: Strategy(name, pay)

    async def for_update(conn: aiomysql.Connection) -> None:
        await read_modify_write(conn, for_update=True)

    return [
        pubsub_lock("pub/sub lock (Redisson behaviour)", 1, local_queue=False),
        pubsub_lock("pub/sub lock + local queue (default)", 1, local_queue=True),
        pubsub_lock("pub/sub lock + local queue, 4 replicas", 4, local_queue=True),
        batched_lock("lock + batched debits (service default)", 1),
        batched_lock("lock + batched debits, 4 replicas", 4),
        pubsub_lock("quorum lock, 3 nodes (Redisson behaviour)", 1, False, lock_nodes),
        pubsub_lock("quorum lock, 3 nodes + local queue", 1, True, lock_nodes),
        pubsub_lock("quorum lock, 3 nodes + local queue, 4 replicas", 4, True, lock_nodes),
        polling_lock,
        simple("SELECT ... FOR UPDATE", for_update),
        simple("conditional UPDATE, no lock", conditional_update),
        simple("no lock read-modify-write (the seed's bug)", read_modify_write),
    ]


async def reset_wallet(pool: aiomysql.Pool) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(SCHEMA)
        await cur.execute("DELETE FROM bench_wallets")
        await cur.execute("INSERT INTO bench_wallets VALUES (1, %s)", (START_BALANCE,))
        await conn.commit()


async def wallet_balance(pool: aiomysql.Pool) -> int:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT balance FROM bench_wallets WHERE id = 1")
        (balance,) = await cur.fetchone()
        await conn.rollback()
        return balance


async def command_counts(servers: list[Redis]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTED_COMMANDS, 0)
    for server in servers:
        stats = await server.info("commandstats")
        for name in COUNTED_COMMANDS:
            counts[name] += int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
    return counts


async def database_ceiling(pool: aiomysql.Pool, payments: int) -> float:
    await reset_wallet(pool)
    async with pool.acquire() as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for _ in range(payments):
            await cur.execute(
                "UPDATE bench_wallets SET balance = balance - 1 WHERE id = 1 AND balance >= 1"
            )
            await conn.commit()
        return payments / (time.perf_counter() - started)


async def run_one(
    make: Callable[[], Strategy],
    pool: aiomysql.Pool,
    redis: Redis,
    lock_nodes: list[Redis],
    payers: int,
    per_payer: int,
) -> dict:
    await reset_wallet(pool)
    strategy = make()
    servers = lock_nodes if strategy.on_lock_nodes else [redis]
    latencies: list[float] = []

    async def payer(index: int) -> None:
        for _ in range(per_payer):
            started = time.perf_counter()
            await strategy.pay(index)
            latencies.append(time.perf_counter() - started)

    before = await command_counts(servers)
    started = time.perf_counter()
    await asyncio.gather(*(payer(i) for i in range(payers)))
    wall = time.perf_counter() - started
    after = await command_counts(servers)
    if strategy.close:
        await strategy.close()
    balance = await wallet_balance(pool)
    payments = payers * per_payer
    commands = sum(after[name] - before[name] for name in COUNTED_COMMANDS)
    return {
        "strategy": strategy.name,
        "payers": payers,
        "payments": payments,
        "wall_s": round(wall, 3),
        "payments_per_s": round(payments / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "lost_updates": payments - (START_BALANCE - balance) // AMOUNT,
        "redis_cmds_per_payment": round(commands / payments, 2),
        "redis_cmds": {name: after[name] - before[name] for name in COUNTED_COMMANDS},
    }


async def uncontended(name: str, on: Redis | list[Redis], count: int) -> dict:
    """One task takes and releases `count` free locks, one after another: the lock's own
    cost per acquisition, in latency and Redis commands (summed over the nodes)."""
    servers = on if isinstance(on, list) else [on]
    locks = LockService(on, prefix=f"bench-free:{time.time_ns()}:")
    latencies: list[float] = []
    before = await command_counts(servers)
    for i in range(count):
        started = time.perf_counter()
        async with locks.hold(f"free:{i}", wait_time=5):
            pass
        latencies.append(time.perf_counter() - started)
    after = await command_counts(servers)
    await locks.close()
    commands = sum(after[name] - before[name] for name in COUNTED_COMMANDS)
    return {
        "lock": name,
        "acquisitions": count,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "redis_cmds_per_acquisition": round(commands / count, 2),
    }


async def main(payer_counts: list[int], payments: int, skip_polling: bool) -> None:
    settings = ServiceSettings(mysql_pool_max=120)
    pool = await db.create_pool(settings, os.environ.get("BENCH_MYSQL_DATABASE", "mockpay_bench"))
    redis = create_redis(settings, max_connections=1000)
    stack = AsyncExitStack()
    # The lock nodes' clients as the payment service builds them (scripts pipelined over
    # one connection per node): a pool of plain connections opened 1,500 at once when 500
    # payers first try the lock, and the quorum counted every node as down.
    lock_nodes = service_lock_nodes(stack, PaymentSettings(lock_redis_nodes=3))
    ceiling = await database_ceiling(pool, payments)
    rows: list[dict] = []
    for payers in payer_counts:
        per_payer = max(1, payments // payers)
        for make in strategies(pool, redis, lock_nodes):
            if skip_polling and make.__name__ == "polling_lock":
                continue
            row = await run_one(make, pool, redis, lock_nodes, payers, per_payer)
            row["x_db_ceiling"] = round(row["payments_per_s"] / ceiling, 2)
            rows.append(row)
            print(f"  done: {row['strategy']} with {payers} payers", flush=True)
    free = [
        await uncontended("one node (REDIS_URL)", redis, 500),
        await uncontended("quorum, 3 nodes", lock_nodes, 500),
    ]
    await redis.aclose()
    await stack.aclose()
    await db.close_pool(pool)
    columns = [
        "strategy", "payers", "payments", "wall_s", "payments_per_s", "x_db_ceiling",
        "p50_ms", "p99_ms", "lost_updates", "redis_cmds_per_payment",
    ]  # fmt: skip
    print(f"\nDatabase ceiling (serial conditional UPDATE + COMMIT): {ceiling:.0f} /s\n")
    print_table(rows, columns)
    print("\nOne free lock taken and released (acquire + release, no contention):\n")
    print_table(free, list(free[0]))
    path = write_json(
        "lock", {"db_ceiling_per_s": round(ceiling, 1), "runs": rows, "uncontended": free}
    )
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payers", type=int, nargs="+", default=[150, 500])
    parser.add_argument("--payments", type=int, default=3000, help="per strategy and payer count")
    parser.add_argument("--skip-polling", action="store_true", help="leave out redis-py's Lock")
    args = parser.parse_args()
    asyncio.run(main(args.payers, args.payments, args.skip_polling))
