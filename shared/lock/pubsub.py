"""Wake-ups for lock waiters: one Redis subscription per lock channel per process.

Every waiter of a channel shares one reference-counted entry. The first waiter subscribes
and waits for Redis to confirm, so no unlock published after that can be missed; the last
one to leave unsubscribes. An unlock message wakes one waiter (the others keep sleeping),
so a release costs one retry, not a stampede.
"""

import asyncio
import contextlib
import logging
from collections import deque

from redis.asyncio import Redis

from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 1.0
RECONNECT_PAUSE_SECONDS = 0.5


class Signal:
    """Wakes one waiter per notify; a notify with nobody waiting is kept for the next one."""

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._pending = False

    @property
    def waiting(self) -> int:
        """How many waiters are waiting now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def notify_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._pending = True

    def notify_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """True when notified, False when `timeout` seconds passed first."""
        if self._pending:
            self._pending = False
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
            return True
        except TimeoutError:
            return waiter.done()
        except asyncio.CancelledError:
            if waiter.done():
                self.notify_one()  # pass on a wake-up this cancelled waiter can no longer use
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)


class Subscription:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.refs = 0
        self.signal = Signal()
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class LockSubscriptions:
    """Reference-counted channel subscriptions over one pub/sub connection."""

    def __init__(self, redis: Redis) -> None:
        self._pubsub = redis.pubsub()
        self._entries: dict[str, Subscription] = {}
        self._awaiting_confirm: dict[str, deque[Subscription]] = {}
        self._commands = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    def join_confirmed(self, channel: str) -> Subscription | None:
        """Share an already confirmed subscription, without any I/O; None if there is none."""
        entry = self._entries.get(channel)
        if entry is None or not entry.confirmed.done():
            return None
        entry.refs += 1
        return entry

    async def join(self, channel: str) -> Subscription:
        """Share the channel's subscription, subscribing first if there is none."""
        entry = self._entries.get(channel)
        if entry is None:
            entry = Subscription(channel)
            self._entries[channel] = entry
            entry.refs += 1
            try:
                async with self._commands:
                    self._awaiting_confirm.setdefault(channel, deque()).append(entry)
                    try:
                        await self._pubsub.subscribe(channel)
                    except BaseException:
                        self._not_awaiting(entry)
                        raise
                    self._ensure_reader()
            except BaseException:
                await self.leave(entry)
                raise
        else:
            entry.refs += 1
        try:
            await asyncio.shield(entry.confirmed)
        except BaseException:
            await self.leave(entry)
            raise
        return entry

    def _not_awaiting(self, entry: Subscription) -> None:
        """A SUBSCRIBE that failed is never confirmed (redis-py resubscribes after a reconnect
        only the channels whose SUBSCRIBE went through): left waiting in line, its entry
        would take the confirmation of the channel's next SUBSCRIBE, and every later join of
        that channel would wait for one that never comes."""
        queue = self._awaiting_confirm.get(entry.channel)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(entry)
        if not queue:
            del self._awaiting_confirm[entry.channel]

    async def leave(self, entry: Subscription) -> None:
        entry.refs -= 1
        if entry.refs > 0 or self._entries.get(entry.channel) is not entry:
            return
        del self._entries[entry.channel]
        with contextlib.suppress(*DEPENDENCY_ERRORS):
            async with self._commands:
                await self._pubsub.unsubscribe(entry.channel)

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="lock-pubsub-reader")

    async def _read(self) -> None:
        lost = False
        while True:
            try:
                if lost:
                    await self._reconnect()
                    lost = False
                message = await self._pubsub.get_message(timeout=READ_TIMEOUT_SECONDS)
            except DEPENDENCY_ERRORS as exc:
                lost = True
                log.warning("lock pub/sub connection failed, reconnecting: %r", exc)
                for entry in self._entries.values():
                    entry.signal.notify_all()  # let waiters retry instead of sleeping a full TTL
                await asyncio.sleep(RECONNECT_PAUSE_SECONDS)
                continue
            if message is not None:
                self._dispatch(message)

    async def _reconnect(self) -> None:
        """Connect again after a loss, under the commands' lock. A join's SUBSCRIBE may be
        connecting at the same moment (a connection counts as connected before its
        handshake is done), and a read beside that handshake takes its replies: asyncio's
        "read() called while another coroutine is already waiting" failed the join and
        killed this reader. Under the lock no join is half-way through connecting."""
        async with self._commands:
            conn = self._pubsub.connection
            if conn is not None and not conn.is_connected:
                await conn.connect()

    def _dispatch(self, message: dict) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        kind = message["type"]
        if kind == "message":
            entry = self._entries.get(channel)
            if entry is not None:
                entry.signal.notify_one()
        elif kind == "subscribe":
            queue = self._awaiting_confirm.get(channel)
            if queue:
                confirmed = queue.popleft()
                if not confirmed.confirmed.done():
                    confirmed.confirmed.set_result(None)
            if not queue:
                self._awaiting_confirm.pop(channel, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(*DEPENDENCY_ERRORS):
            await self._pubsub.aclose()
