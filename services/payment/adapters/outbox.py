"""The outbox table, and all of its SQL: events are added in the transaction that changed the
money (OutboxRepository) and claimed, marked published and pruned by the relay (OutboxQueue).
"""

import abc
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import aiomysql

from services.payment.adapters.writes import Writes
from shared import db, tracing
from shared.clock import utcnow
from shared.events import PaymentEvent
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.settings import ServiceSettings

INSERT_HEAD = (
    "INSERT INTO outbox (event_id, topic, event_key, event_type, payload, created_at, traceparent)"
)
INSERT_ROW = "(%s, %s, %s, %s, %s, %s, %s)"
INSERT = f"{INSERT_HEAD} VALUES {INSERT_ROW}"


def insert_values(topic: str, event: PaymentEvent, now: datetime) -> tuple[object, ...]:
    """The parameters of INSERT for one event, with the trace of the request in hand."""
    trace = tracing.current()
    return (
        event.event_id,
        topic,
        event.user_id,
        event.event_type,
        event.to_bytes(),
        now,
        str(trace) if trace is not None else None,
    )


class OutboxRepository(abc.ABC):
    @abc.abstractmethod
    async def add(self, topic: str, event: PaymentEvent, now: datetime) -> None: ...

    async def add_many(self, topic: str, events: list[PaymentEvent], now: datetime) -> None:
        for event in events:
            await self.add(topic, event, now)


class MySqlOutbox(OutboxRepository):
    """Events are queued on the unit of work's writes and sent with its commit."""

    def __init__(self, writes: Writes) -> None:
        self.writes = writes

    async def add(self, topic: str, event: PaymentEvent, now: datetime) -> None:
        await self.add_many(topic, [event], now)

    async def add_many(self, topic: str, events: list[PaymentEvent], now: datetime) -> None:
        rows = [insert_values(topic, event, now) for event in events]
        self.writes.add_rows(INSERT_HEAD, INSERT_ROW, rows)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    event_type: str
    payload: bytes
    traceparent: str | None

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers of the event: its type, and its trace when it has one."""
        headers = [("event_type", self.event_type.encode())]
        if self.traceparent:
            headers.append((tracing.HEADER, self.traceparent.encode()))
        return headers


READ_COMMITTED = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"


async def create_relay_pool(
    settings: ServiceSettings, database: str, maxsize: int
) -> aiomysql.Pool:
    """The pool an OutboxQueue needs: READ COMMITTED sessions (a claim then locks only the
    rows it claims: under REPEATABLE READ it also takes gap locks, and every payment's
    outbox insert would wait behind a relay that waits for Kafka), and multi-statements
    (the mark and its COMMIT go in one round trip)."""
    return await db.create_pool(
        settings, database, init_command=READ_COMMITTED, maxsize=maxsize, multi_statements=True
    )


class OutboxQueue:
    """The relay's side of the outbox, over a pool of the relay's own (create_relay_pool):
    a claim costs two round trips, the SELECT and the mark with its COMMIT."""

    def __init__(self, pool: aiomysql.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[list[OutboxRow]]:
        """Up to `limit` unpublished rows, locked; marked published when the block ends
        normally, in the transaction that claimed them, and left unpublished otherwise.

        `SKIP LOCKED` lets relays of several replicas share the work without waiting.
        """
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            try:
                await cur.execute(
                    "SELECT id, topic, event_key, event_type, payload, traceparent FROM outbox"
                    " WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (limit,),
                )
                rows = [OutboxRow(*row) for row in await cur.fetchall()]
                yield rows
                if rows:
                    placeholders = ", ".join(["%s"] * len(rows))
                    await cur.execute(
                        f"UPDATE outbox SET published_at = %s WHERE id IN ({placeholders}); COMMIT",
                        (utcnow(), *(row.id for row in rows)),
                    )
                    await cur.nextset()  # the COMMIT's answer
                else:
                    await conn.commit()
            except BaseException:
                with contextlib.suppress(*DEPENDENCY_ERRORS):
                    await conn.rollback()
                raise

    async def prune(self, published_before: datetime, limit: int = 10_000) -> int:
        """Delete up to `limit` rows published before `published_before`; how many went."""
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "DELETE FROM outbox WHERE published_at < %s LIMIT %s", (published_before, limit)
            )
            await conn.commit()
            return int(cur.rowcount)

    async def unpublished(self) -> int:
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")
            (count,) = await cur.fetchone()
            await conn.rollback()
            return int(count)
