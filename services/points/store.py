"""Points in MariaDB: an event's effect and its event_id are written in one transaction."""

from decimal import Decimal
from typing import Any

import aiomysql
import pymysql.err

from services.points.domain import EARN, change_for
from shared.clock import iso, utcnow
from shared.db import DUPLICATE_KEY
from shared.events import PAYMENT_CANCELLED, PaymentEvent
from shared.infra_errors import DEPENDENCY_ERRORS


class PointsStore:
    """`pool` must allow multi-statements (db.create_pool(..., multi_statements=True))."""

    def __init__(self, pool: aiomysql.Pool, rate: Decimal) -> None:
        self.pool = pool
        self.rate = rate

    async def apply(self, event: PaymentEvent) -> bool:
        """Apply the event once; False when its event_id was applied before.

        The writes and the COMMIT go in one multi-statement query (the pool allows them):
        the server stops at the first error, so a repeated event_id (a duplicate key on the
        first statement) stops it before anything else, and the transaction rolls back.
        """
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                now = utcnow()
                earned = None
                if event.event_type == PAYMENT_CANCELLED:  # only a reversal needs the earning
                    await cur.execute(
                        "SELECT delta FROM points_entries WHERE payment_id = %s AND kind = %s",
                        (event.payment_id, EARN),
                    )
                    row = await cur.fetchone()
                    earned = row[0] if row else None
                kind, delta = change_for(event, self.rate, earned)
                statements = [
                    cur.mogrify(
                        "INSERT INTO processed_events (event_id, event_type, processed_at)"
                        " VALUES (%s, %s, %s)",
                        (event.event_id, event.event_type, now),
                    ),
                    cur.mogrify(
                        "INSERT INTO points_entries"
                        " (user_id, payment_id, event_id, kind, delta, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s)",
                        (event.user_id, event.payment_id, event.event_id, kind, delta, now),
                    ),
                    cur.mogrify(
                        "INSERT INTO points_accounts (user_id, balance, updated_at)"
                        " VALUES (%s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE balance = balance + %s, updated_at = %s",
                        (event.user_id, delta, now, delta, now),
                    ),
                    "COMMIT",
                ]
                try:
                    await cur.execute(";\n".join(statements))  # raises the first one's error
                except pymysql.err.IntegrityError as exc:
                    if exc.args[0] != DUPLICATE_KEY:
                        raise
                    await conn.rollback()
                    return False  # this event_id was applied before
                for _ in statements[1:]:
                    await cur.nextset()  # raises a later statement's error
                return True
            except BaseException:
                try:
                    await conn.rollback()
                except DEPENDENCY_ERRORS:
                    conn.close()  # broken: the pool must not hand it out again
                raise

    async def account(self, user_id: str, entries: int = 100) -> dict[str, Any] | None:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT balance FROM points_accounts WHERE user_id = %s", (user_id,))
            row = await cur.fetchone()
            if row is None:
                await conn.rollback()
                return None
            await cur.execute(
                "SELECT payment_id, event_id, kind, delta, created_at FROM points_entries"
                " WHERE user_id = %s ORDER BY entry_id DESC LIMIT %s",
                (user_id, entries),
            )
            listed = [
                {
                    "payment_id": payment_id,
                    "event_id": event_id,
                    "kind": kind,
                    "delta": delta,
                    "created_at": iso(created_at),
                }
                for payment_id, event_id, kind, delta, created_at in await cur.fetchall()
            ]
            await conn.rollback()
            return {"user_id": user_id, "balance": row[0], "entries": listed}
