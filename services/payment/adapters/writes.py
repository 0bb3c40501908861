"""A unit of work's writes, sent to the database together: one round trip before the commit.

A payment writes four statements (its row, the balance, the ledger entry, the outbox event);
sent one by one they cost four round trips and, in this asyncio client, about a fifth of the
payment service's CPU per payment. The repositories queue their writes here; the unit of
work sends them as one multi-statement query when it commits (the connection must allow
multi-statements), reads each statement's result, and raises the queued error of the first
statement whose result is not what it needed: a compare-and-set that changed no row, an
insert that hit a unique key. The commit then does not happen and the transaction rolls back.

Parameters are escaped by the client, exactly as `cursor.execute(sql, args)` would.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pymysql.err
from aiomysql import Cursor

DUPLICATE_KEY = 1062  # ER_DUP_ENTRY


@dataclass(frozen=True)
class Write:
    sql: str
    must_change_one: Exception | None = None  # raised if the statement changed no row
    on_duplicate: Exception | None = None  # raised if it hit a unique key


class Writes:
    """`together=False` sends the statements one by one (a connection without
    multi-statements); what raises, and when, is the same."""

    def __init__(self, cur: Cursor, together: bool = True) -> None:
        self.cur = cur
        self.together = together
        self.pending: list[Write] = []

    def add(
        self,
        sql: str,
        args: Sequence[object],
        *,
        must_change_one: Exception | None = None,
        on_duplicate: Exception | None = None,
    ) -> None:
        self.pending.append(Write(self.cur.mogrify(sql, args), must_change_one, on_duplicate))

    def add_rows(
        self,
        head: str,
        row: str,
        rows: Sequence[Sequence[object]],
        *,
        on_duplicate: Exception | None = None,
    ) -> None:
        """One `head VALUES row, row, ...` insert for all `rows`."""
        values = ", ".join(self.cur.mogrify(row, args) for args in rows)
        self.pending.append(Write(f"{head} VALUES {values}", None, on_duplicate))

    async def flush(self) -> None:
        """Send what is queued; raise the queued error of the first statement that failed."""
        writes, self.pending = self.pending, []
        if not writes:
            return
        if not self.together:
            for write in writes:
                await self._send([write])
            return
        await self._send(writes)

    async def _send(self, writes: list[Write]) -> None:
        index = 0
        refused: Exception | None = None
        try:
            await self.cur.execute(";\n".join(write.sql for write in writes))
            for index, write in enumerate(writes):
                if index:
                    await self.cur.nextset()
                if refused is None and write.must_change_one and self.cur.rowcount != 1:
                    refused = write.must_change_one  # read the other results first
        except pymysql.err.IntegrityError as exc:
            failed = writes[index].on_duplicate
            if exc.args[0] == DUPLICATE_KEY and failed is not None:
                raise failed from exc
            raise
        if refused is not None:
            raise refused
