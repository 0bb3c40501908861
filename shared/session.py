"""A process's session, like a ZooKeeper session: others can tell whether the process lives.

    session = Session(redis, session_connection, ttl_seconds=2)   # one per process
    await session.start()          # from now on `session.instance_id` counts as alive
    await other.lapsed(instance)   # None while that process lives; what was seen otherwise
    await session.stop()           # a clean stop ends the session at once

Each process start gets a random instance id and keeps the key `session:<id>` in Redis,
refreshed every ttl/3 over a connection of its own, whose Redis client id is the key's
value. The session is over when the key is gone (the process stopped refreshing: dead,
paused, cut off, for longer than the ttl) or when that connection is closed (a killed
process's sockets are closed by its kernel at once, so a kill -9 is seen at once, not a
ttl later). Redis never gives a client id twice, so a session seen over stays over until
its process writes the key again; takeovers (the lock's, the idempotency record's) check
that the value they saw is still the one there.

Locks and idempotency records carry the instance id of their holder, so a waiter can take
over what a dead process held, and a paused process that comes back is refused by the
fencing token (locks) or by the record's token (idempotency).
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from shared.background import set_within
from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

PREFIX = "session:"


def session_key(instance_id: str) -> str:
    return f"{PREFIX}{instance_id}"


def _no_count() -> None:
    return None


class Session:
    def __init__(
        self,
        redis: Redis,
        connection: Redis,
        *,
        ttl_seconds: float = 2.0,
        instance_id: str | None = None,
        on_refresh_failed: Callable[[], None] = _no_count,
    ) -> None:
        """`redis` reads other sessions; `connection` is this session's own single-connection
        client (its client id is in the key), used for nothing else."""
        self.redis = redis
        self.connection = connection
        self.ttl_ms = int(ttl_seconds * 1000)
        self.instance_id = instance_id or uuid.uuid4().hex
        self.key = session_key(self.instance_id)
        self.on_refresh_failed = on_refresh_failed
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Write the key once (a failure is logged: the loop keeps trying), then keep it."""
        await self.refresh()
        self._task = asyncio.create_task(self._keep(), name=f"session:{self.instance_id}")

    async def refresh(self) -> bool:
        try:
            client_id = await self.connection.client_id()
            await self.connection.set(self.key, client_id, px=self.ttl_ms)
        except DEPENDENCY_ERRORS as exc:
            self.on_refresh_failed()
            log.warning("session %s not refreshed (%r); retrying", self.instance_id, exc)
            return False
        return True

    async def _keep(self) -> None:
        while not await set_within(self._stopped, self.ttl_ms / 3000):
            await self.refresh()

    async def stop(self) -> None:
        """End the session: what this process still holds may be taken over at once."""
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(*DEPENDENCY_ERRORS):
            await self.connection.delete(self.key)

    async def lapsed(self, instance_id: str) -> str | None:
        """None while `instance_id`'s session lives; when it is over, the key's value as seen
        ("" for no key), for a takeover to check that it has not changed since.

        Raises a Redis error when that cannot be read: the caller then assumes it lives.
        """
        if instance_id == self.instance_id:
            return None
        value = await self.redis.get(session_key(instance_id))
        if value is None:
            return ""
        seen = value.decode() if isinstance(value, bytes) else str(value)
        if await self.redis.client_list(client_id=[seen]):
            return None
        return seen

    async def is_alive(self, instance_id: str) -> bool:
        return await self.lapsed(instance_id) is None
