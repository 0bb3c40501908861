"""The pipelined scripts encode a command exactly as redis-py does."""

import pytest
import redis.exceptions
from redis.asyncio.connection import Connection

from shared.redis_scripts import pack


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 1, "idem:payments:o-1", b'{"state":"running"}', 30000),
        ("EVAL", "return 1", 0),
        ("SET", "k", 1.5, -7, 0, b"", "ünïcode", b"\r\n\x00binary"),
    ],
)
def test_a_command_is_encoded_like_redis_py(args):
    assert pack(args) == b"".join(Connection().pack_command(*args))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_an_argument_redis_py_refuses_is_refused(bad):
    with pytest.raises(redis.exceptions.DataError):
        Connection().pack_command("SET", "k", bad)
    with pytest.raises(redis.exceptions.DataError):
        pack(("SET", "k", bad))
