"""A unit of work's writes and its COMMIT, sent to the database together: one round trip.

A payment writes four statements (its row, the balance, the ledger entry, the outbox event);
sent one by one they cost four round trips and, in this asyncio client, about a fifth of the
payment service's CPU per payment. The repositories queue their writes here, and the unit
of work sends them with the COMMIT after them as one compound statement:

    BEGIN NOT ATOMIC <write>; <write>; IF ROW_COUNT() <> 1 THEN SIGNAL ...; END IF; COMMIT; END

One statement has one answer. Sent as a multi-statement query instead, each statement
answers on its own, and reading six answers cost the client 210 µs of CPU against 80 µs for
the compound statement, and the server 320 µs against 240 µs (same writes, same machine).
The server runs the block's statements in order and stops at the first error, so every
check a write needs happens inside it, before the COMMIT:

- an insert that hits a unique key fails by itself; the error names the key, which says
  which write it was (`duplicate_key`);
- a compare-and-set (`must_change_one`) is followed by a check that signals NO_ROW_CHANGED,
  with the write's number in its message, when the statement changed no row.

The client then raises the queued error of the write that failed; the COMMIT was not run
(NOT ATOMIC: the writes before it stay in the open transaction), and the unit of work rolls
the transaction back.

Parameters are escaped by the client, exactly as `cursor.execute(sql, args)` would
(shared.sql.mogrify, which costs less).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql.err
from aiomysql import Cursor

from shared.db import DUPLICATE_KEY
from shared.sql import mogrify

NO_ROW_CHANGED = 30001  # what a missed compare-and-set signals (user errors may use 1-65535)
_MISSED = re.compile(r"^write (\d+) changed no row$")


def _check_changed_one(index: int) -> str:
    return (
        f"IF ROW_COUNT() <> 1 THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = {NO_ROW_CHANGED},"
        f" MESSAGE_TEXT = 'write {index} changed no row'; END IF"
    )


@dataclass(frozen=True)
class Write:
    sql: str
    must_change_one: Exception | None = None  # raised if the statement changed no row
    on_duplicate: Exception | None = None  # raised if it hit the unique key `duplicate_key`
    duplicate_key: str | None = None


class Writes:
    """`together=False` sends the statements one by one, a round trip each, and the COMMIT
    after them (the unit of work's `multi_statements=False`); what raises, and when, is the
    same."""

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
    ) -> None:
        self.pending.append(Write(mogrify(self.cur, sql, args), must_change_one))

    def add_rows(
        self,
        head: str,
        row: str,
        rows: Sequence[Sequence[object]],
        *,
        on_duplicate: Exception | None = None,
        duplicate_key: str | None = None,
    ) -> None:
        """One `head VALUES row, row, ...` insert for all `rows`; `on_duplicate` is raised
        when it hits the unique key named `duplicate_key`."""
        values = ", ".join([mogrify(self.cur, row, args) for args in rows])
        self.pending.append(Write(f"{head} VALUES {values}", None, on_duplicate, duplicate_key))

    async def flush(self, commit: bool = False) -> None:
        """Send what is queued, with a COMMIT after it when `commit`; raise the queued error
        of the write that failed (the COMMIT is then not run)."""
        writes, self.pending = self.pending, []
        if not self.together:
            for write in writes:
                await self._send(write.sql, writes)
                if write.must_change_one is not None and self.cur.rowcount != 1:
                    raise write.must_change_one
            if commit:
                await self.cur.connection.commit()
            return
        if writes:
            await self._send(block(writes, commit), writes)
        elif commit:
            await self.cur.connection.commit()

    async def _send(self, sql: str, writes: list[Write]) -> None:
        try:
            await self.cur.execute(sql)
            while await self.cur.nextset():
                pass
        except pymysql.err.MySQLError as exc:
            meant = _meaning(exc, writes)
            if meant is None:
                raise
            raise meant from exc


def block(writes: list[Write], commit: bool) -> str:
    """The writes as one compound statement, each compare-and-set checked, COMMIT last."""
    parts = []
    for index, write in enumerate(writes):
        parts.append(write.sql)
        if write.must_change_one is not None:
            parts.append(_check_changed_one(index))
    if commit:
        parts.append("COMMIT")
    return f"BEGIN NOT ATOMIC {'; '.join(parts)}; END"


def _meaning(exc: pymysql.err.MySQLError, writes: list[Write]) -> Exception | None:
    """The queued error of the write that `exc` came from, None if it has none."""
    code = exc.args[0] if exc.args else None
    message = str(exc.args[1]) if len(exc.args) > 1 else ""
    if code == NO_ROW_CHANGED and (missed := _MISSED.match(message)):
        return writes[int(missed.group(1))].must_change_one
    if code == DUPLICATE_KEY:
        for write in writes:
            if write.on_duplicate is not None and f"for key '{write.duplicate_key}'" in message:
                return write.on_duplicate
    return None
