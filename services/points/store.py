"""Points in MariaDB: an event's effect and its event_id are written in one transaction,
alone (`apply`) or with the other events of a batch (`apply_batch`, group commit)."""

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiomysql
import pymysql.err

from services.points.domain import EARN, change_for
from shared.batching import Batcher
from shared.clock import iso, utcnow
from shared.db import DUPLICATE_KEY
from shared.events import PAYMENT_CANCELLED, PaymentEvent
from shared.infra_errors import DEPENDENCY_ERRORS, is_outage
from shared.sql import mogrify


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
        async with self._transaction() as cur:
            try:
                await self._send(cur, [event])
            except pymysql.err.IntegrityError as exc:
                if exc.args[0] != DUPLICATE_KEY:
                    raise
                await cur.connection.rollback()
                return False  # this event_id was applied before
            await self._results(cur)
            return True

    async def apply_batch(self, _key: str, events: list[PaymentEvent]) -> list[bool | Exception]:
        """Apply the events in one transaction: one round trip and one commit for all.

        One event that cannot go with the others (applied before, say, or refused by the
        database) fails the batch's transaction, which rolls back; each event is then applied
        alone, so it decides only its own answer. An outage is every event's answer at once.
        """
        if len(events) == 1:
            return [await self.apply(events[0])]
        try:
            async with self._transaction() as cur:
                await self._send(cur, events)
                await self._results(cur)
        except Exception as failure:  # noqa: BLE001 - each event is applied alone instead
            if is_outage(failure):
                return [failure] * len(events)
            return [await self._alone(event) for event in events]
        return [True] * len(events)

    async def _alone(self, event: PaymentEvent) -> bool | Exception:
        try:
            return await self.apply(event)
        except Exception as failure:  # noqa: BLE001 - this event's answer, not the others'
            return failure

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiomysql.Cursor]:
        """A cursor whose transaction is rolled back if the block raises."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                yield cur
            except BaseException:
                try:
                    await conn.rollback()
                except DEPENDENCY_ERRORS:
                    conn.close()  # broken: the pool must not hand it out again
                raise

    async def _send(self, cur: aiomysql.Cursor, events: list[PaymentEvent]) -> None:
        """The events' writes and the COMMIT, in one query; raises the first statement's
        error (a repeated event_id fails the first)."""
        now = utcnow()
        earned = await self._earned(cur, events)
        changes = [change_for(e, self.rate, earned.get(e.payment_id)) for e in events]
        await cur.execute(";\n".join([*self._writes(cur, events, changes, now), "COMMIT"]))

    @staticmethod
    async def _results(cur: aiomysql.Cursor) -> None:
        for _ in range(3):
            await cur.nextset()  # raises a later statement's error (the COMMIT not run)

    async def _earned(self, cur: aiomysql.Cursor, events: list[PaymentEvent]) -> dict[str, int]:
        """What the completions of the batch's cancelled payments earned (one query); a
        completion in this very batch is not there yet, and change_for covers it."""
        cancelled = [e.payment_id for e in events if e.event_type == PAYMENT_CANCELLED]
        if not cancelled:
            return {}
        await cur.execute(
            "SELECT payment_id, delta FROM points_entries WHERE kind = %s AND payment_id IN ("
            + ", ".join(["%s"] * len(cancelled))
            + ")",
            (EARN, *cancelled),
        )
        return {payment_id: delta for payment_id, delta in await cur.fetchall()}

    @staticmethod
    def _writes(
        cur: aiomysql.Cursor,
        events: list[PaymentEvent],
        changes: list[tuple[str, int]],
        now: datetime,
    ) -> list[str]:
        """The three statements, a row per event in the first two; an account changed by
        several events gets their sum in one row."""
        per_user: Counter[str] = Counter()
        for event, (_, delta) in zip(events, changes, strict=True):
            per_user[event.user_id] += delta
        processed = ", ".join(
            mogrify(cur, "(%s, %s, %s)", (e.event_id, e.event_type, now)) for e in events
        )
        entries = ", ".join(
            mogrify(
                cur,
                "(%s, %s, %s, %s, %s, %s)",
                (e.user_id, e.payment_id, e.event_id, kind, delta, now),
            )
            for e, (kind, delta) in zip(events, changes, strict=True)
        )
        accounts = ", ".join(
            mogrify(cur, "(%s, %s, %s)", (user, delta, now))
            for user, delta in sorted(per_user.items())
        )
        return [
            f"INSERT INTO processed_events (event_id, event_type, processed_at) VALUES {processed}",
            "INSERT INTO points_entries (user_id, payment_id, event_id, kind, delta, created_at)"
            f" VALUES {entries}",
            f"INSERT INTO points_accounts (user_id, balance, updated_at) VALUES {accounts}"
            " ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance),"
            " updated_at = VALUES(updated_at)",
        ]

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


class GroupCommit:
    """Events applied through PointsStore.apply_batch: those handed in while a batch's
    transaction runs go together in the next one, up to `max_size` (the faust agent's
    concurrency, POINTS_CONCURRENCY, bounds how many are in hand at once)."""

    KEY = "points"  # one queue: batches of a worker run one after another

    def __init__(
        self, store: PointsStore, max_size: int, observe: Callable[[int], None] | None = None
    ) -> None:
        self.batcher: Batcher[PaymentEvent, bool] = Batcher(
            store.apply_batch, max_size=max_size, observe=observe
        )

    async def apply(self, event: PaymentEvent) -> bool:
        """Apply the event once; False when its event_id was applied before."""
        return await self.batcher.submit(self.KEY, event)

    async def close(self) -> None:
        await self.batcher.close()
