"""A unit of work's writes and its COMMIT, sent to the database together: one round trip.

A payment writes four statements (its row, the balance, the ledger entry, the outbox event);
sent one by one they cost four round trips and, in this asyncio client, about a fifth of the
payment service's CPU per payment. The repositories queue their writes here; the unit of
work sends them, and the COMMIT after them, as one multi-statement query (the connection
must allow multi-statements). The server runs the statements in order and stops at the
first error, so every check a write needs happens inside the query, before the COMMIT:

- an insert that hits a unique key fails by itself;
- a compare-and-set (`must_change_one`) is followed by a compound statement that signals an
  error when the statement before it changed no row (`ROW_COUNT()`), see CHECK_CHANGED_ONE.

The client then raises the queued error of the statement that failed; the COMMIT was not
run, and the unit of work rolls the transaction back.

Parameters are escaped by the client, exactly as `cursor.execute(sql, args)` would
(shared.sql.mogrify, which costs less).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pymysql.err
from aiomysql import Cursor

from shared.db import DUPLICATE_KEY
from shared.sql import mogrify

NO_ROW_CHANGED = 30001  # what CHECK_CHANGED_ONE signals (user errors may use 1-65535)
CHECK_CHANGED_ONE = (
    "BEGIN NOT ATOMIC IF ROW_COUNT() <> 1 THEN SIGNAL SQLSTATE '45000'"
    f" SET MYSQL_ERRNO = {NO_ROW_CHANGED}, MESSAGE_TEXT = 'compare-and-set changed no row';"
    " END IF; END"
)


@dataclass(frozen=True)
class Write:
    sql: str
    must_change_one: Exception | None = None  # raised if the statement changed no row
    on_duplicate: Exception | None = None  # raised if it hit a unique key
    on_no_change: Exception | None = None  # raised if it signals NO_ROW_CHANGED


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
        self.pending.append(Write(mogrify(self.cur, sql, args), must_change_one, on_duplicate))

    def add_rows(
        self,
        head: str,
        row: str,
        rows: Sequence[Sequence[object]],
        *,
        on_duplicate: Exception | None = None,
    ) -> None:
        """One `head VALUES row, row, ...` insert for all `rows`."""
        values = ", ".join([mogrify(self.cur, row, args) for args in rows])
        self.pending.append(Write(f"{head} VALUES {values}", None, on_duplicate))

    async def flush(self, commit: bool = False) -> None:
        """Send what is queued, with a COMMIT after it when `commit`; raise the queued error
        of the first statement that failed (the COMMIT is then not run)."""
        writes, self.pending = self.pending, []
        if not self.together:
            for write in writes:
                await self._send([write])
            if commit:
                await self.cur.connection.commit()
            return
        if commit:
            writes = [*_checked(writes), Write("COMMIT")]
        if writes:
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
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            failed = writes[index]
            if code == DUPLICATE_KEY and failed.on_duplicate is not None:
                raise failed.on_duplicate from exc
            if code == NO_ROW_CHANGED and failed.on_no_change is not None:
                raise failed.on_no_change from exc
            raise
        if refused is not None:
            raise refused


def _checked(writes: list[Write]) -> list[Write]:
    """Each compare-and-set followed by the check that stops the query when it missed."""
    out = []
    for write in writes:
        out.append(write)
        if write.must_change_one is not None:
            out.append(Write(CHECK_CHANGED_ONE, on_no_change=write.must_change_one))
    return out
