"""Many payers on one wallet through the payment service: `make bench-hot-wallet`.

The payment app runs in this process (lifespan, pools, lock and all) and is called through
ASGI, so the run measures the service and its client pools, not an HTTP server. Every payer
pays in a loop; each 503 is counted by its code and, for DEPENDENCY_UNAVAILABLE, by the
exception the service logged: a Redis or MariaDB pool that could not hand out a connection
is a client-pool 503, which this benchmark exists to show there are none of.

    python -m bench.hot_wallet [--payers 500] [--payments 3000] [--redis-pools 200 50]
"""

import argparse
import asyncio
import logging
import time
import uuid
from collections import Counter

import httpx

from bench.events import PAYMENT_DB, bench_redis_url, start_clean
from bench.report import percentile, print_table, write_json
from services.payment.domain.commands import CreditWallet
from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings

START_BALANCE = 10**12


class DependencyErrors(logging.Handler):
    """Counts the exception classes behind DEPENDENCY_UNAVAILABLE answers (shared.http logs)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("dependency unavailable") and isinstance(
            record.args, tuple
        ):
            self.seen[type(record.args[-1]).__name__] += 1


async def run(payers: int, payments: int, redis_pool_max: int) -> dict[str, object]:
    settings = PaymentSettings(
        payment_mysql_database=PAYMENT_DB,
        redis_url=bench_redis_url(),
        redis_pool_max=redis_pool_max,
        events_topic=f"bench.hot.{uuid.uuid4().hex[:8]}",
        outbox_relay_enabled=False,
    )
    await start_clean(settings)
    errors = DependencyErrors()
    logging.getLogger("shared.http").addHandler(errors)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        parts = app.state.components
        headers = {"Authorization": f"Bearer {settings.api_keys()[0]}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://payment", headers=headers, timeout=120
        ) as client:
            await client.post("/wallets", json={"user_id": "hot"})
            await parts.service.credit(CreditWallet("hot", START_BALANCE, "bench-seed"))

            async def payer(count: int) -> None:
                for _ in range(count):
                    body = {"order_id": uuid.uuid4().hex, "user_id": "hot", "amount": 1}
                    started = time.perf_counter()
                    answer = await client.post("/payments", json=body)
                    latencies.append(time.perf_counter() - started)
                    code = answer.json().get("code", "") if answer.status_code >= 400 else ""
                    statuses[f"{answer.status_code} {code}".strip()] += 1

            started = time.perf_counter()
            await asyncio.gather(*(payer(payments // payers) for _ in range(payers)))
            wall = time.perf_counter() - started
            balance = (await client.get("/wallets/hot")).json()["balance"]
    logging.getLogger("shared.http").removeHandler(errors)
    done = sum(statuses.values())
    pool_errors = sum(
        n for name, n in errors.seen.items() if name in ("ConnectionError", "MaxConnectionsError")
    )
    return {
        "redis_pool_max": redis_pool_max,
        "payers": payers,
        "payments": done,
        "per_s": round(done / wall, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "201": statuses["201"],
        "503_lock_timeout": statuses["503 LOCK_TIMEOUT"],
        "503_dependency": statuses["503 DEPENDENCY_UNAVAILABLE"],
        "503_client_pool": pool_errors,
        "other": done
        - statuses["201"]
        - statuses["503 LOCK_TIMEOUT"]
        - statuses["503 DEPENDENCY_UNAVAILABLE"],
        "debited_once": START_BALANCE - balance == statuses["201"],
        "dependency_errors": dict(errors.seen),
    }


async def main(payers: int, payments: int, pools: list[int]) -> None:
    rows = []
    for size in pools:
        rows.append(await run(payers, payments, size))
        print(f"  done: Redis pool of {size}", flush=True)
    columns = [
        "redis_pool_max", "payers", "payments", "per_s", "p99_ms", "201", "503_lock_timeout",
        "503_dependency", "503_client_pool", "other", "debited_once",
    ]  # fmt: skip
    print()
    print_table(rows, columns)
    print(f"\nJSON: {write_json('hot_wallet', {'runs': rows})}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payers", type=int, default=500)
    parser.add_argument("--payments", type=int, default=3000)
    parser.add_argument("--redis-pools", type=int, nargs="+", default=[200, 50])
    args = parser.parse_args()
    asyncio.run(main(args.payers, args.payments, args.redis_pools))
