"""`@distributed_lock`: run a service method under a lock, in a transaction of its own.

The equivalent of Spring's `@DistributedLock` aspect with `AopForTransaction`
(REQUIRES_NEW): the lock is taken, a new unit of work begins, the method runs, the unit of
work commits, and only then is the lock released. An exception of any class rolls the
unit of work back. A lease lost while the method ran fails the call before the commit.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Held(Protocol):
    """What a locking strategy hands the unit of work: a fencing token and a liveness check."""

    token: int | None

    def ensure_held(self) -> None: ...


class Committable(Protocol):
    async def commit(self) -> None: ...


class LockedService(Protocol):
    def hold_lock(self, name: str) -> AbstractAsyncContextManager[Held]: ...

    def unit_of_work(self, held: Held) -> AbstractAsyncContextManager[Any]: ...


S = TypeVar("S", bound=LockedService)


def distributed_lock(
    key: str,
) -> Callable[
    [Callable[Concatenate[S, Any, P], Awaitable[R]]], Callable[Concatenate[S, P], Awaitable[R]]
]:
    """`key` is a format string over the method's arguments, e.g. "wallet:{cmd.user_id}".

    The decorated method takes the unit of work as its first argument after self; callers
    do not pass it.
    """

    def decorate(
        method: Callable[Concatenate[S, Any, P], Awaitable[R]],
    ) -> Callable[Concatenate[S, P], Awaitable[R]]:
        signature = inspect.signature(method)

        @functools.wraps(method)
        async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind(self, None, *args, **kwargs).arguments
            async with self.hold_lock(key.format(**arguments)) as held:
                async with self.unit_of_work(held) as uow:
                    result = await method(self, uow, *args, **kwargs)
                    held.ensure_held()
                    await uow.commit()
                return result

        return run

    return decorate
