"""make bench-audit: the audit's time and peak memory as the tables grow.

For each size, a payment and a points database of their own are filled by set-based SQL
with a consistent shop (one credit per wallet, one debit and one points EARN per payment,
balances and points accounts equal to their entries), then `python -m services.audit` runs
in a process of its own, whose peak resident memory the kernel reports (wait4). Memory
that stays flat as the rows grow is what "streams by key ranges" promises.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiomysql

from bench.report import print_table, write_json
from services.audit import AuditSettings
from shared import db
from shared.settings import REPO_ROOT, ServiceSettings

PAYMENT_MIGRATIONS = REPO_ROOT / "services" / "payment" / "migrations"
POINTS_MIGRATIONS = REPO_ROOT / "services" / "points" / "migrations"
PAYMENTS_PER_WALLET = 100


async def _sql(conn: aiomysql.Connection, *statements: str) -> None:
    async with conn.cursor() as cur:
        for statement in statements:
            await cur.execute(statement)
    await conn.commit()


async def drop(settings: ServiceSettings, *names: str, create: bool = False) -> None:
    conn = await db.connect(settings, autocommit=True)
    try:
        async with conn.cursor() as cur:
            for name in names:
                found = "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
                await cur.execute(found, name)
                if await cur.fetchone():
                    await cur.execute(f"DROP DATABASE `{name}`")
                if create:
                    await cur.execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()


async def _fresh(settings: ServiceSettings, name: str, migrations: Path) -> None:
    await drop(settings, name, create=True)
    pool = await db.create_pool(settings, name, maxsize=1)
    try:
        await db.apply_migrations(pool, migrations)
    finally:
        await db.close_pool(pool)


def _numbers(count: int) -> str:
    """A derived table of n = 0 .. count-1 (portable: no sequence engine, no recursion)."""
    digits = (
        "(SELECT 0 d UNION ALL " + " UNION ALL ".join(f"SELECT {i}" for i in range(1, 10)) + ")"
    )
    width = max(1, len(str(count - 1)))
    joins = ", ".join(f"{digits} d{i}" for i in range(width))
    value = " + ".join(f"d{i}.d * {10**i}" for i in range(width))
    return f"(SELECT {value} AS n FROM {joins} HAVING n < {count})"


async def fill(settings: ServiceSettings, payment_db: str, points_db: str, payments: int) -> None:
    await _fresh(settings, payment_db, PAYMENT_MIGRATIONS)
    await _fresh(settings, points_db, POINTS_MIGRATIONS)
    wallets = max(1, payments // PAYMENTS_PER_WALLET)
    user = f"CONCAT('u', LPAD(n MOD {wallets}, 8, '0'))"
    pid = "LPAD(n, 36, '0')"
    amount = "(1000 + n MOD 5000)"
    then = "UTC_TIMESTAMP(6) - INTERVAL 1 DAY"
    ledger = (
        "INSERT INTO ledger_entries (user_id, delta, kind, reference, balance_after, created_at)"
    )
    conn = await db.connect(settings, payment_db)
    try:
        await _sql(
            conn,
            "INSERT INTO wallets (user_id, balance, created_at, updated_at)"
            f" SELECT CONCAT('u', LPAD(n, 8, '0')), 0, {then}, {then}"
            f" FROM {_numbers(wallets)} t",
            f"{ledger} SELECT user_id, 1000000000, 'CREDIT', CONCAT('seed-', user_id), 0, {then}"
            " FROM wallets",
            "INSERT INTO payments (payment_id, order_id, user_id, amount, status, balance_after,"
            f" created_at) SELECT {pid}, CONCAT('o', n), {user}, {amount}, 'COMPLETED', 0, {then}"
            f" FROM {_numbers(payments)} t",
            f"{ledger} SELECT user_id, -amount, 'PAYMENT', payment_id, 0, {then} FROM payments",
            "UPDATE wallets w JOIN (SELECT user_id, SUM(delta) total FROM ledger_entries"
            " GROUP BY user_id) l ON l.user_id = w.user_id SET w.balance = l.total",
            f"INSERT INTO `{points_db}`.processed_events (event_id, event_type, processed_at)"
            f" SELECT CONCAT('e', payment_id), 'PaymentCompleted', {then} FROM payments",
            f"INSERT INTO `{points_db}`.points_entries"
            " (user_id, payment_id, event_id, kind, delta, created_at)"
            f" SELECT user_id, payment_id, CONCAT('e', payment_id), 'EARN', FLOOR(amount / 100),"
            f" {then} FROM payments",
            f"INSERT INTO `{points_db}`.points_accounts (user_id, balance, updated_at)"
            f" SELECT user_id, SUM(delta), {then} FROM `{points_db}`.points_entries"
            " GROUP BY user_id",
        )
    finally:
        conn.close()


def audit_process(payment_db: str, points_db: str) -> tuple[int, float, float]:
    """(exit status, seconds, peak RSS in MiB) of `python -m services.audit`."""
    env = {
        **os.environ,
        "PAYMENT_MYSQL_DATABASE": payment_db,
        "POINTS_MYSQL_DATABASE": points_db,
        "POINTS_RATE": "0.01",
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.audit", "--json"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.monotonic() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--payments", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    settings = AuditSettings()
    payment_db = f"{settings.payment_mysql_database}_bench"
    points_db = f"{settings.points_mysql_database}_bench"
    rows = []
    for payments in args.payments:
        fill_started = time.monotonic()
        asyncio.run(fill(settings, payment_db, points_db, payments))
        filled = time.monotonic() - fill_started
        status, seconds, rss = audit_process(payment_db, points_db)
        rows.append({
            "payments": payments,
            "rows read": payments * 4 + 2 * max(1, payments // PAYMENTS_PER_WALLET),
            "audit s": f"{seconds:.1f}",
            "payments/s": f"{payments / seconds:,.0f}",
            "peak RSS MiB": f"{rss:.0f}",
            "exit": status,
            "fill s": f"{filled:.0f}",
        })  # fmt: skip
        print_table(rows[-1:], list(rows[-1]))
    asyncio.run(drop(settings, payment_db, points_db))  # a million rows: not kept around
    print()
    print_table(rows, list(rows[0]))
    path = write_json("audit", {"rows": rows})
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
