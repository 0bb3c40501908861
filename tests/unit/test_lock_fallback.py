"""FallbackLocking: the lock service down means the row lock; the lock busy means waiting."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.exceptions

from services.payment.service_layer.locking import FallbackLocking, Held, NotHeld
from shared.lock import LockTimeout


@dataclass
class Token:
    token: int | None = 7
    row_locks: bool = False

    def ensure_held(self) -> None:
        return None


class FakeRedisLocking:
    def __init__(self, on_enter: BaseException | None = None, on_exit: BaseException | None = None):
        self.on_enter = on_enter
        self.on_exit = on_exit

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Held]:
        if self.on_enter:
            raise self.on_enter
        yield Token()
        if self.on_exit:
            raise self.on_exit


class Counted:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_unreachable_lock_service_falls_back_to_the_row_lock_and_is_counted():
    counted = Counted()
    down = FakeRedisLocking(on_enter=redis.exceptions.ConnectionError("refused"))
    async with FallbackLocking(down, counted).hold("wallet:u") as held:
        assert isinstance(held, NotHeld)
        assert (held.token, held.row_locks) == (None, True)
    assert counted.count == 1


async def test_a_busy_lock_is_not_a_fallback():
    counted = Counted()
    busy = FakeRedisLocking(on_enter=LockTimeout("busy"))
    with pytest.raises(LockTimeout):
        async with FallbackLocking(busy, counted).hold("wallet:u"):
            pass
    assert counted.count == 0


async def test_the_lease_fences_the_writes_while_the_lock_service_answers():
    counted = Counted()
    async with FallbackLocking(FakeRedisLocking(), counted).hold("wallet:u") as held:
        assert (held.token, held.row_locks) == (7, False)
    assert counted.count == 0


async def test_a_release_that_cannot_reach_redis_does_not_fail_committed_work():
    gone = FakeRedisLocking(on_exit=redis.exceptions.ConnectionError("gone"))
    async with FallbackLocking(gone).hold("wallet:u") as held:
        assert held.token == 7


async def test_an_error_in_the_work_still_propagates():
    with pytest.raises(ValueError, match="boom"):
        async with FallbackLocking(FakeRedisLocking()).hold("wallet:u"):
            raise ValueError("boom")
