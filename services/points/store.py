"""Points in MariaDB: an event's effect and its event_id are written in one transaction."""

from decimal import Decimal
from typing import Any

import aiomysql

from services.points.domain import EARN, change_for
from shared.clock import iso, utcnow
from shared.events import PAYMENT_CANCELLED, PaymentEvent
from shared.infra_errors import DEPENDENCY_ERRORS


class PointsStore:
    def __init__(self, pool: aiomysql.Pool, rate: Decimal) -> None:
        self.pool = pool
        self.rate = rate

    async def apply(self, event: PaymentEvent) -> bool:
        """Apply the event once; False when its event_id was applied before."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                now = utcnow()
                await cur.execute(
                    "INSERT INTO processed_events (event_id, event_type, processed_at)"
                    " VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE event_id = event_id",
                    (event.event_id, event.event_type, now),
                )
                if cur.rowcount != 1:
                    await conn.rollback()
                    return False
                earned = None
                if event.event_type == PAYMENT_CANCELLED:  # only a reversal needs the earning
                    await cur.execute(
                        "SELECT delta FROM points_entries WHERE payment_id = %s AND kind = %s",
                        (event.payment_id, EARN),
                    )
                    row = await cur.fetchone()
                    earned = row[0] if row else None
                kind, delta = change_for(event, self.rate, earned)
                await cur.execute(
                    "INSERT INTO points_entries"
                    " (user_id, payment_id, event_id, kind, delta, created_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (event.user_id, event.payment_id, event.event_id, kind, delta, now),
                )
                await cur.execute(
                    "INSERT INTO points_accounts (user_id, balance, updated_at) VALUES (%s, %s, %s)"
                    " ON DUPLICATE KEY UPDATE balance = balance + %s, updated_at = %s",
                    (event.user_id, delta, now, delta, now),
                )
                await conn.commit()
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
