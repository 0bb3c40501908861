"""Random ids from the kernel's randomness, read 4 KiB at a time.

`uuid.uuid4()` and `secrets.token_hex()` each make a getrandom system call; a payment needs
about six ids (its payment id, its event id, an idempotency token, a trace and span id), and
on a virtual machine those calls cost tens of microseconds each. These draw from the same
source (os.urandom), buffered; a forked child starts with an empty buffer, so no two
processes hand out the same bytes.
"""

import os
import uuid

_CHUNK = 4096
_buffer = b""
_offset = 0


def random_bytes(count: int) -> bytes:
    global _buffer, _offset
    if _offset + count > len(_buffer):
        _buffer, _offset = os.urandom(max(_CHUNK, count)), 0
    start, _offset = _offset, _offset + count
    return _buffer[start:_offset]


def uuid4() -> uuid.UUID:
    return uuid.UUID(bytes=random_bytes(16), version=4)


def token_hex(count: int) -> str:
    """`count` random bytes as hex, like secrets.token_hex."""
    return random_bytes(count).hex()


def _forget() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_forget)
