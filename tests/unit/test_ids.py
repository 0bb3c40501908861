"""Buffered random ids: well-formed, never repeated, and not shared with a forked child."""

import os

from shared import ids


def test_uuids_are_version_4_and_never_repeat_across_buffer_refills():
    seen = [ids.uuid4() for _ in range(10_000)]  # 160 KB: forty refills of the buffer
    assert len(set(seen)) == len(seen)
    assert {u.version for u in seen} == {4}
    assert {u.variant for u in seen} == {"specified in RFC 4122"}


def test_tokens_are_hex_of_the_asked_length():
    tokens = {ids.token_hex(8) for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)


def test_a_forked_child_does_not_hand_out_its_parents_next_bytes():
    ids.token_hex(8)  # the buffer is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, ids.token_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != ids.token_hex(16)
