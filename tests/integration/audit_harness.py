"""A small shop's worth of real data for the audit to check, in databases of the tests' own.

The data is made by the real code: the payment app (with the real bank gateway and fake
bank) takes top-ups, payments and cancellations; the points store applies the events the
outbox holds, as the points service does after Kafka. That pristine pair of databases is
copied for each test, which then corrupts its copy.
"""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiomysql

from services.audit import AuditReport, AuditSettings, run_audit
from services.payment.domain.commands import CreditWallet
from services.points.store import PointsStore
from shared import db
from shared.events import decode
from shared.settings import ServiceSettings
from testkit.processes import REPO
from tests.integration.bank_harness import running_payment_with_bank

PAYMENT_MIGRATIONS = REPO / "services" / "payment" / "migrations"
POINTS_MIGRATIONS = REPO / "services" / "points" / "migrations"
RATE = Decimal("0.01")


def database_names(suffix: str) -> tuple[str, str]:
    return (
        f"{os.environ['PAYMENT_MYSQL_DATABASE']}_{suffix}",
        f"{os.environ['POINTS_MYSQL_DATABASE']}_{suffix}",
    )


@contextlib.asynccontextmanager
async def admin() -> AsyncIterator[aiomysql.Connection]:
    settings = ServiceSettings()
    conn = await db.connect(settings, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


async def execute(conn: aiomysql.Connection, sql: str, *args: object) -> list[tuple]:
    async with conn.cursor() as cur:
        await cur.execute(sql, args or None)
        return list(await cur.fetchall())


async def drop_database(conn: aiomysql.Connection, name: str) -> None:
    # A plain DROP ... IF EXISTS warns when there is none, and warnings fail the tests.
    found = await execute(
        conn, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", name
    )
    if found:
        await execute(conn, f"DROP DATABASE `{name}`")


async def recreate(conn: aiomysql.Connection, name: str) -> None:
    await drop_database(conn, name)
    await execute(conn, f"CREATE DATABASE `{name}`")


async def copy_database(conn: aiomysql.Connection, source: str, target: str) -> None:
    await recreate(conn, target)
    for (table,) in await execute(conn, f"SHOW TABLES FROM `{source}`"):
        await execute(conn, f"CREATE TABLE `{target}`.`{table}` LIKE `{source}`.`{table}`")
        await execute(conn, f"INSERT INTO `{target}`.`{table}` SELECT * FROM `{source}`.`{table}`")


@dataclass
class Shop:
    """What the seeding did, so tests can say what the audit must see."""

    users: list[str] = field(default_factory=list)
    money: int = 0
    payments: int = 0
    cancelled: int = 0
    points: int = 0


async def migrate(settings: ServiceSettings, payment_db: str, points_db: str) -> None:
    for name, migrations in ((payment_db, PAYMENT_MIGRATIONS), (points_db, POINTS_MIGRATIONS)):
        pool = await db.create_pool(settings, name, maxsize=1)
        try:
            await db.apply_migrations(pool, migrations)
        finally:
            await db.close_pool(pool)


async def seed(payment_db: str, points_db: str) -> Shop:
    async with admin() as conn:
        await recreate(conn, payment_db)
        await recreate(conn, points_db)
    settings = ServiceSettings()
    await migrate(settings, payment_db, points_db)
    shop = Shop()
    overrides: dict[str, Any] = {
        "payment_mysql_database": payment_db,
        "outbox_relay_enabled": False,
    }
    async with running_payment_with_bank(**overrides) as (app, _):
        for _ in range(4):
            shop.users.append(await app.new_wallet())
        topped, credited, buyer, idle = shop.users
        for user, amount in ((topped, 100_000), (buyer, 50_000)):
            answer = await app.client.post(
                f"/wallets/{user}/charges",
                json={"charge_id": f"c-{uuid.uuid4().hex}", "amount": amount},
            )
            assert answer.status_code == 201, answer.text
        await app.parts.service.credit(CreditWallet(credited, 30_000, f"ops-{credited}"))
        shop.money = 180_000
        for user, amount, cancel in (
            (topped, 12_345, False), (topped, 20_000, True), (credited, 10_001, False),
            (buyer, 5_555, True), (buyer, 7_000, False),
        ):  # fmt: skip
            paid = await app.pay(user, amount)
            assert paid.status_code == 201, paid.text
            shop.payments += 1
            if cancel:
                payment_id = paid.json()["payment_id"]
                answer = await app.client.post(f"/payments/{payment_id}/cancel")
                assert answer.status_code == 200, answer.text
                shop.cancelled += 1
            else:
                shop.money -= amount
                shop.points += int(amount * RATE)
    await deliver_events(settings, payment_db, points_db)
    return shop


async def deliver_events(settings: ServiceSettings, payment_db: str, points_db: str) -> None:
    """What relay, Kafka and the points service do: apply each outbox event, mark it sent."""
    payment = await db.create_pool(settings, payment_db, maxsize=1)
    points = await db.create_pool(settings, points_db, maxsize=1, multi_statements=True)
    try:
        store = PointsStore(points, RATE)
        async with payment.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id"
            )
            for outbox_id, payload in await cur.fetchall():
                assert await store.apply(decode(payload))
                await cur.execute(
                    "UPDATE outbox SET published_at = UTC_TIMESTAMP(6) WHERE id = %s", (outbox_id,)
                )
            await conn.commit()
    finally:
        await db.close_pool(payment)
        await db.close_pool(points)


@dataclass
class AuditedSystem:
    """A test's own copy of the shop: corrupt it with SQL, then audit it."""

    payment_db: str
    points_db: str
    shop: Shop
    conn: aiomysql.Connection

    async def payment(self, sql: str, *args: object) -> list[tuple]:
        await execute(self.conn, f"USE `{self.payment_db}`")
        return await execute(self.conn, sql, *args)

    async def points(self, sql: str, *args: object) -> list[tuple]:
        await execute(self.conn, f"USE `{self.points_db}`")
        return await execute(self.conn, sql, *args)

    def settings(self, **overrides: object) -> AuditSettings:
        values: dict[str, object] = {
            "payment_mysql_database": self.payment_db,
            "points_mysql_database": self.points_db,
            "points_rate": RATE,
            **overrides,
        }
        return AuditSettings(**values)  # type: ignore[arg-type]

    async def audit(self, **overrides: object) -> AuditReport:
        return await run_audit(self.settings(**overrides))
