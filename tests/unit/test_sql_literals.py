"""shared.sql.mogrify gives the very text aiomysql's own escaping gives, for every type the
services write and for types it leaves to aiomysql."""

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pymysql.constants import SERVER_STATUS
from pymysql.converters import escape_bytes_prefixed, escape_item, escape_string

from shared.sql import mogrify


class Shade(enum.IntEnum):
    DARK = 2


class FakeConnection:
    """What mogrify reads of a connection: aiomysql's escape, and the server status."""

    def __init__(self, server_status: int = 0) -> None:
        self.server_status = server_status

    def escape(self, obj: object) -> str:  # aiomysql.Connection.escape, without a server
        if isinstance(obj, str):
            return "'" + escape_string(obj) + "'"
        if isinstance(obj, bytes):
            return escape_bytes_prefixed(obj)
        return escape_item(obj, "utf8mb4")


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    def mogrify(self, sql: str, args: tuple) -> str:  # aiomysql.Cursor.mogrify
        return sql % tuple(self.connection.escape(arg) for arg in args)


VALUES = [
    "plain",
    "",
    'it\'s "quoted" \\ back\\slash',
    "new\nline\r\x00nul\x1a",
    "ünïcødé ✓ 𝄞",
    0,
    -17,
    10**30,
    True,
    False,
    None,
    datetime(2026, 12, 3, 10, 5, 7),
    datetime(2026, 12, 3, 10, 5, 7, 123),
    datetime(2026, 12, 3, 10, 5, 7, 999999, tzinfo=UTC),
    datetime(2026, 12, 3, 10, 5, 7, tzinfo=UTC),
    datetime(1, 1, 1),
    datetime(999, 12, 31, 23, 59, 59, 1),
    date(2026, 1, 2),
    b"",
    b"\x00\xff'\\bytes\n",
    Decimal("0.01"),
    Decimal("-12345.6789"),
    Decimal("1E+3"),
    1.5,
    Shade.DARK,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_each_value_is_escaped_as_aiomysql_escapes_it(value):
    cur = FakeCursor(FakeConnection())
    assert mogrify(cur, "SELECT %s", (value,)) == cur.mogrify("SELECT %s", (value,))


def test_a_row_of_many_values_and_a_literal_percent():
    cur = FakeCursor(FakeConnection())
    sql = "INSERT INTO t VALUES (" + ", ".join(["%s"] * len(VALUES)) + ") -- 100%%"
    assert mogrify(cur, sql, VALUES) == cur.mogrify(sql, tuple(VALUES))


def test_a_server_without_backslash_escapes_is_left_to_aiomysql():
    mode = SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES
    cur = FakeCursor(FakeConnection(server_status=mode))
    cur.mogrify = lambda sql, args: "aiomysql's"  # type: ignore[method-assign]
    assert mogrify(cur, "SELECT %s", ("it's",)) == "aiomysql's"
