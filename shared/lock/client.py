"""A distributed re-entrant lock on Redis with the behaviour of Redisson's RLock, plus fencing.

    locks = LockService(redis)                  # one per process, in the service's lifespan
    async with locks.hold("wallet:u1", wait_time=5) as lease:
        ...  # lease.token is this acquisition's fencing token

    LockService([node1, node2, node3])          # the same lock on a majority of three nodes

- Acquire, release and renewal are Lua scripts (one command each). The client given must
  not retry commands by itself: a retried acquire would count the hold twice.
- Waiters sleep on a pub/sub notification, each sleep capped at the lock's remaining TTL,
  so a lost message or a crashed holder costs at most that TTL.
- With no lease time, a watchdog renews the lease every lease/3 and stops at release; when
  renewal finds the lock gone the lease is marked lost and `ensure_held()` raises.
- Tasks of one process queue locally first (`local_queue=True`), so only one task per lock
  and process talks to Redis at a time; turn it off for Redisson's exact behaviour.
- Given several independent nodes, every script runs on all of them and a majority decides
  (`quorum.py`); the lease is then also bounded by its validity time, renewed or not.
- Given a session (`takeover=Takeover(session)`), owner ids carry the process's instance id
  and a waiter takes over the lock of a holder whose process is gone (`takeover.py`)
  instead of waiting for its lease.
- Each hold has an owner id of its own; a last release that misses a node is run there
  again by the janitor until the node answers (`janitor.py`).
- With `release_behind=True` a queued hold's block returns as soon as it ends, and the
  release (or the hand-over to the next task in line) runs on in the background. This
  process's next holder of the lock still waits for it (the local queue's head is left
  only when the release is done), other processes wait for Redis as always, and
  `close()` waits for the releases in flight. The caller's next command, sent in the same
  loop turn, shares the release's system call and reply.
"""

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from shared import ids
from shared.background import Deferred, set_within
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.lock import scripts
from shared.lock.counters import LockCounters
from shared.lock.errors import LockLostError, LockNotOwnedError, LockTimeout
from shared.lock.janitor import Drop, Janitor
from shared.lock.local_queue import LocalQueue, Turn
from shared.lock.pubsub import LockSubscriptions, Subscription
from shared.lock.quorum import FirstLiveSubscriptions, QuorumScripts
from shared.lock.takeover import Takeover, Verdict, instance_of

log = logging.getLogger(__name__)

FENCE_COUNTER_TTL_MS = 7 * 24 * 3600 * 1000


@dataclass
class Lease:
    """One holding of a lock by one task. Re-entry by the same task shares it."""

    name: str
    owner: str
    token: int
    lease_ms: int
    expires_at: float | None = None  # monotonic deadline when there is no watchdog
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)  # stops the watchdog
    holds: int = 1
    watchdog: Deferred | None = None  # a timer until the first renewal is due, then a task

    def ensure_held(self) -> None:
        """Raise LockLostError if the lock may no longer be ours; call it before committing."""
        if self.lost.is_set():
            raise LockLostError(f"lock {self.name!r} was lost while held")
        if self.expires_at is not None and time.monotonic() >= self.expires_at:
            raise LockLostError(f"lease of lock {self.name!r} ran out while held")


@dataclass(frozen=True)
class Attempt:
    """An acquire's answer: the token when acquired, else the lock's ttl (ms) and holder."""

    acquired: bool
    value: int
    holder: str = ""
    taken_over: bool = False


class LockScripts:
    """The lock's Lua scripts registered on one Redis client, and the one plain read."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.acquire = redis.register_script(scripts.ACQUIRE)
        self.release = redis.register_script(scripts.RELEASE)
        self.renew = redis.register_script(scripts.RENEW)
        self.force_release = redis.register_script(scripts.FORCE_RELEASE)
        self._hand_over = redis.register_script(scripts.HAND_OVER)
        self._drop = redis.register_script(scripts.DROP)

    async def hand_over(
        self, keys: list[str], args: list[Any], missed: Callable[[int], None] | None = None
    ) -> int:
        return int(await self._hand_over(keys=keys, args=args))

    async def finish(self, keys: list[str], args: list[Any], missed: Callable[[int], None]) -> int:
        """A hold's last release: 1 released, -1 not the owner; `missed(0)` if it failed."""
        try:
            return int(await self._drop(keys=keys, args=args))
        except DEPENDENCY_ERRORS:
            missed(0)
            raise

    async def drop(self, node: int, drop: Drop) -> None:
        await self._drop(keys=[drop.key, drop.channel], args=[drop.owner])

    async def exists(self, key: str) -> bool:
        return bool(await self.redis.exists(key))

    def valid_until(self, started: float, lease_ms: int) -> float | None:
        """One node: the lease is as good as the node says (the watchdog finds out if not)."""
        return None

    async def close(self) -> None:
        return None


Scripts = LockScripts | QuorumScripts
Subscriptions = LockSubscriptions | FirstLiveSubscriptions


class TaskOwners:
    """Owner ids `<instance id>:<hold id>`, the instance id being the process's session's:
    a new one for every hold a task takes, the same for its re-entries. No task uses a
    hold's id after its release, so what is left of a hold on a node that missed the
    release can be dropped without touching any later hold (janitor.py)."""

    def __init__(self, instance_id: str | None = None) -> None:
        self.instance_id = instance_id or uuid.uuid4().hex
        self._held: weakref.WeakKeyDictionary[asyncio.Task, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )

    def new(self) -> str:
        return f"{self.instance_id}:{ids.token_hex(16)}"  # no system call, unlike uuid4

    def bind(self, key: str, owner: str) -> None:
        """The current task holds `key` as `owner` (its re-entries use that id)."""
        self._held.setdefault(_current_task(), {})[key] = owner

    def bound(self, key: str) -> str | None:
        """The owner id of the current task's last hold of `key`, None if it took none."""
        task = asyncio.current_task()
        return self._held.get(task, {}).get(key) if task is not None else None


def _current_task() -> asyncio.Task:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("locks are held by asyncio tasks; call from inside one")
    return task


Leases = dict[tuple[str, str], Lease]  # (lock key, owner) -> the lease that owner holds


class LockService:
    """Creates locks over one Redis client; owns the pub/sub connection and the watchdogs."""

    def __init__(
        self,
        redis: Redis | Sequence[Redis],
        *,
        watchdog_timeout: float = 30.0,
        prefix: str = "lock:",
        local_queue: bool = True,
        node_timeout: float = 0.5,
        drift_factor: float = 0.01,
        takeover: Takeover | None = None,
        counters: LockCounters | None = None,
        release_retry: float = 1.0,
        release_behind: bool = False,
    ) -> None:
        self.watchdog_timeout = watchdog_timeout
        self.takeover = takeover
        self.counters = counters or LockCounters()
        self.prefix = prefix
        self.local_queue = local_queue
        nodes = [redis] if isinstance(redis, Redis) else list(redis)
        self.scripts: Scripts
        self.subscriptions: Subscriptions
        if len(nodes) == 1:
            self.scripts = LockScripts(nodes[0])
            self.subscriptions = LockSubscriptions(nodes[0])
        else:
            self.scripts = QuorumScripts(
                nodes, node_timeout=node_timeout, drift_factor=drift_factor
            )
            self.subscriptions = FirstLiveSubscriptions(nodes)
        self.owners = TaskOwners(takeover.liveness.instance_id if takeover else None)
        self.leases: Leases = {}
        self._queue: LocalQueue[Lease] = LocalQueue()
        self.janitor = Janitor(self.scripts.drop, release_retry, self.counters.release_missed)
        self.release_behind = release_behind
        self._releasing: set[asyncio.Task[None]] = set()

    def lock(self, name: str) -> "RedisLock":
        return RedisLock(
            name,
            scripts=self.scripts,
            owners=self.owners,
            subscriptions=self.subscriptions,
            leases=self.leases,
            watchdog_timeout=self.watchdog_timeout,
            prefix=self.prefix,
            takeover=self.takeover,
            counters=self.counters,
            janitor=self.janitor,
        )

    @contextlib.asynccontextmanager
    async def hold(
        self, name: str, wait_time: float | None, lease_time: float | None = None
    ) -> AsyncIterator[Lease]:
        """Hold `name` for the block; LockTimeout if it is not free within `wait_time`.

        On leaving, a lock found already lost is logged, not raised: the block has finished,
        and the fencing token is what protected its writes.
        """
        lock = self.lock(name)
        if not self.local_queue or lock.held_by_current_task() is not None:
            lease = await lock.try_lock(wait_time, lease_time)
            if lease is None:
                raise LockTimeout(f"lock {name!r} not acquired within {wait_time}s")
            try:
                yield lease
            finally:
                await _finish(lock.pass_on(lease, None, lease_time))
            return
        async with self._queued(lock, wait_time, lease_time) as lease:
            yield lease

    @contextlib.asynccontextmanager
    async def _queued(
        self, lock: "RedisLock", wait_time: float | None, lease_time: float | None
    ) -> AsyncIterator[Lease]:
        entered = time.monotonic()  # waiting in the local queue is waiting for the lock
        deadline = None if wait_time is None else entered + wait_time

        async def leave(lease: Lease | None) -> None:
            handed = None
            try:
                if lease is not None:
                    successor = self._queue.reserve_next(lock.name)
                    handed = await lock.pass_on(lease, successor, lease_time)
            finally:
                self._queue.leave(lock.name, handed)

        try:
            lease = await self._queue.enter(lock.name, self.owners.new(), wait_time, leave)
        except TimeoutError:
            raise LockTimeout(f"lock {lock.name!r} not acquired within {wait_time}s") from None
        try:
            if lease is not None:
                self.owners.bind(lock.key, lease.owner)
            else:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                lease = await lock.try_lock(remaining, lease_time, waiting_since=entered)
                if lease is None:
                    raise LockTimeout(f"lock {lock.name!r} not acquired within {wait_time}s")
            yield lease
        except BaseException:
            await _finish(leave(lease))
            raise
        if not self.release_behind:
            await _finish(leave(lease))
            return
        # This task may take the lock again at once: from now on it is not the holder.
        lock.forget(lease)
        self._behind(lock.name, leave(lease))

    def _behind(self, name: str, release: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await release
            except DEPENDENCY_ERRORS as exc:
                # Its lease runs out by itself; a node that missed it is the janitor's.
                log.warning("lock %r: not released (%r)", name, exc)
            except Exception:  # no caller is left to raise it to
                log.exception("lock %r: release failed", name)

        task = asyncio.ensure_future(run())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def close(self) -> None:
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)
        await self.janitor.close()
        await self.subscriptions.close()
        await self.scripts.close()

    async def __aenter__(self) -> "LockService":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _finish(step: Awaitable[object]) -> None:
    """Run a release step to its end even if the caller is cancelled meanwhile."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class RedisLock:
    """One named lock. Cheap to create; its state lives in Redis and in the collaborators
    that its LockService shares with all its locks."""

    def __init__(
        self,
        name: str,
        *,
        scripts: Scripts,
        owners: TaskOwners,
        subscriptions: Subscriptions,
        leases: Leases,
        watchdog_timeout: float,
        prefix: str,
        takeover: Takeover | None = None,
        counters: LockCounters | None = None,
        janitor: Janitor | None = None,
    ) -> None:
        self.name = name
        self.takeover = takeover
        self.counters = counters or LockCounters()
        self.janitor = janitor
        self.scripts = scripts
        self.owners = owners
        self.subscriptions = subscriptions
        self.leases = leases
        self.watchdog_timeout = watchdog_timeout
        self.key = f"{prefix}{{{name}}}"
        self.fence_key = f"{self.key}:fence"
        self.channel = f"{self.key}:channel"

    def held_by_current_task(self) -> Lease | None:
        owner = self.owners.bound(self.key)
        return self.leases.get((self.key, owner)) if owner else None

    async def try_lock(
        self,
        wait_time: float | None = None,
        lease_time: float | None = None,
        *,
        waiting_since: float | None = None,
    ) -> Lease | None:
        """Acquire within `wait_time` seconds (None: wait as long as it takes).

        With `lease_time` the lock expires after it unless released; without, the watchdog
        keeps it alive until `unlock()`. Returns the lease, or None when the wait ran out.
        With a takeover, a holder found without a session is replaced (takeover.py): its
        first check is due `check_after` seconds after `waiting_since` (when the caller
        began waiting, in a local queue say; default now), then every `check_after`.
        """
        held = self.held_by_current_task()
        owner = held.owner if held is not None else self.owners.new()
        lease_ms = int((lease_time or self.watchdog_timeout) * 1000)
        began = time.monotonic()
        deadline = None if wait_time is None else began + wait_time
        check_after = self.takeover.check_after if self.takeover else 0.0
        check_at = (began if waiting_since is None else waiting_since) + check_after
        verdict = Verdict("", f"not checked: waited less than {check_after}s")
        forgotten: set[str] = set()  # holders of this process that hold no lease in it
        subscription = self.subscriptions.join_confirmed(self.channel)
        try:
            started = time.monotonic()
            attempt = await self._attempt(owner, lease_ms)
            while not attempt.acquired:
                now = time.monotonic()
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    self._gave_up(wait_time, attempt.holder, verdict, subscription is not None)
                    return None
                ttl = attempt.value / 1000 if attempt.value >= 0 else self.watchdog_timeout
                pause = ttl if remaining is None else min(ttl, remaining)
                if self.takeover is not None:
                    pause = min(pause, max(0.0, check_at - now))
                if subscription is not None:
                    await subscription.signal.wait(pause)
                elif pause > 0:  # subscribed, it tries again at once: no release is missed
                    subscription = await self._subscribe(now + pause)
                dead = ""
                if self.takeover is not None and time.monotonic() >= check_at:
                    check_at = time.monotonic() + check_after
                    verdict = await self._dead_holder(attempt.holder, forgotten)
                    dead = verdict.dead
                started = time.monotonic()
                attempt = await self._attempt(owner, lease_ms, dead)
        finally:
            if subscription is not None:
                await self.subscriptions.leave(subscription)
        if attempt.taken_over and self.takeover is not None:
            self.takeover.on_takeover()
        self.owners.bind(self.key, owner)
        return self._held(owner, attempt.value, lease_ms, lease_time, started)

    def _gave_up(
        self, wait_time: float | None, holder: str, verdict: Verdict, subscribed: bool
    ) -> None:
        """Say who held the lock and why it was not taken over (when it can be)."""
        if self.takeover is None:
            return
        log.warning("lock %r: not acquired within %ss; held by %s; last check: %s%s",
                    self.name, wait_time, holder or "?", verdict.why,
                    "" if subscribed else "; no wake-up subscription")  # fmt: skip

    async def _dead_holder(self, holder: str, forgotten: set[str]) -> Verdict:
        """Who may be taken over: an instance without a session, or an owner of this very
        process that holds no lease here, seen so twice a check apart (an acquisition in
        flight is registered long before that). Such a hold is left on a lock node that
        missed its release while it was down, and came back with it from its data."""
        assert self.takeover is not None
        if instance_of(holder) != self.owners.instance_id:
            return await self.takeover.judge(self.name, holder)
        if (self.key, holder) in self.leases:
            return Verdict("", f"{holder}: a lease of this process")
        if holder not in forgotten:
            forgotten.add(holder)
            return Verdict("", f"{holder}: of this process, no lease here, seen once")
        log.warning("lock %r: held by %s of this process, which holds no lease: taking it over",
                    self.name, holder)  # fmt: skip
        return Verdict(holder, f"{holder}: of this process, no lease here")

    async def _subscribe(self, until: float) -> Subscription | None:
        """The channel's subscription, None if not confirmed by `until` (a node that died
        under it, say): the waiter then polls, and tries to subscribe again next time."""
        try:
            return await asyncio.wait_for(
                self.subscriptions.join(self.channel), until - time.monotonic()
            )
        except TimeoutError:
            self.counters.subscription_timeout()
            return None

    async def _attempt(self, owner: str, lease_ms: int, dead: str = "") -> "Attempt":
        """One acquire script (taking over from `dead`, an instance without a session, if
        it holds the lock); on a cancel mid-flight, release what it may have taken."""
        try:
            acquired, value, extra = await self.scripts.acquire(
                keys=[self.key, self.fence_key],
                args=[lease_ms, owner, FENCE_COUNTER_TTL_MS, dead],
            )
        except asyncio.CancelledError:
            if (self.key, owner) not in self.leases:
                with contextlib.suppress(*DEPENDENCY_ERRORS):
                    await asyncio.shield(
                        self.scripts.release(keys=[self.key, self.channel], args=[lease_ms, owner])
                    )
            raise
        if acquired:
            return Attempt(True, int(value), taken_over=bool(int(extra)))
        holder = extra.decode() if isinstance(extra, bytes) else str(extra)
        return Attempt(False, int(value), holder=holder)

    def _held(
        self, owner: str, token: int, lease_ms: int, lease_time: float | None, started: float
    ) -> Lease:
        lease = self.leases.get((self.key, owner))
        if lease is not None:
            lease.holds += 1
            return lease
        lease = Lease(self.name, owner, token, lease_ms)
        if lease_time is None:
            lease.watchdog = Deferred(
                lease_ms / 3000, lambda: self._watch(lease), name=f"watchdog:{self.name}"
            )
        else:
            lease.expires_at = time.monotonic() + lease_time
        valid_until = self.scripts.valid_until(started, lease_ms)
        if valid_until is not None:
            lease.expires_at = min(lease.expires_at or valid_until, valid_until)
        self.leases[(self.key, owner)] = lease
        return lease

    async def _watch(self, lease: Lease) -> None:
        """Renew now (started when the first renewal is due), then every lease/3 until
        released; mark the lease lost when it is not ours."""
        interval = lease.lease_ms / 3000
        first = True
        while not lease.released.is_set():
            if not first and await set_within(lease.released, interval):
                return
            first = False
            started = time.monotonic()
            try:
                renewed = await self.scripts.renew(
                    keys=[self.key], args=[lease.lease_ms, lease.owner]
                )
            except DEPENDENCY_ERRORS as exc:
                log.warning("lock %r: renewal failed, will retry: %r", self.name, exc)
                continue
            if lease.released.is_set():
                return  # released while the renewal ran: a refusal now means nothing
            if not renewed:
                log.error("lock %r: lost while held (expired or force-unlocked)", self.name)
                lease.lost.set()
                return
            valid_until = self.scripts.valid_until(started, lease.lease_ms)
            if valid_until is not None:
                lease.expires_at = valid_until

    async def pass_on(
        self, lease: Lease, successor: Turn[Lease] | None, lease_time: float | None
    ) -> Lease | None:
        """Release one hold of `lease`, handing the lock to `successor` when it can.

        Returns the successor's lease, or None when the lock was released (or found lost,
        which is logged: the holder's writes were guarded by its fencing token).
        """
        if lease.holds > 1:
            lease.holds -= 1
            await self._release(lease)
            return None
        self.forget(lease)
        if successor is not None:
            started = time.monotonic()
            try:
                token = await self.scripts.hand_over(
                    keys=[self.key, self.fence_key],
                    args=[lease.lease_ms, lease.owner, successor.owner, FENCE_COUNTER_TTL_MS],
                    missed=self._missed(lease),
                )
            except DEPENDENCY_ERRORS:
                token = 0  # the release below finds out, and leaves it to the janitor
            if token:
                return self._held(successor.owner, int(token), lease.lease_ms, lease_time, started)
        if await self._finish(lease) == -1:
            log.warning("lock %r was already lost when its holder released it", self.name)
        return None

    async def _finish(self, lease: Lease) -> int:
        """The hold's last release; nodes that miss it are left to the janitor."""
        return await self.scripts.finish(
            keys=[self.key, self.channel], args=[lease.owner], missed=self._missed(lease)
        )

    def _missed(self, lease: Lease) -> Callable[[int], None]:
        def owe(node: int) -> None:
            if self.janitor is not None:
                self.janitor.owe(node, Drop(self.key, self.channel, lease.owner), lease.lease_ms)

        return owe

    async def _release(self, lease: Lease) -> int:
        return int(
            await self.scripts.release(
                keys=[self.key, self.channel], args=[lease.lease_ms, lease.owner]
            )
        )

    async def unlock(self) -> None:
        """Release one hold; raises LockNotOwnedError, touching nothing, if not ours."""
        lease = self.held_by_current_task()
        if lease is None:
            raise LockNotOwnedError(f"lock {self.name!r} is not held by this task")
        if lease.holds > 1:
            lease.holds -= 1
            released = await self._release(lease)
        else:
            self.forget(lease)
            released = await self._finish(lease)
        if released == -1:
            raise LockNotOwnedError(f"lock {self.name!r} is not held by this task")

    def forget(self, lease: Lease) -> None:
        """The lease is no longer the current task's (its release may still be in flight)."""
        # The flag stops the watchdog even when the cancel is lost (see set_within).
        lease.released.set()
        if lease.watchdog is not None:
            lease.watchdog.cancel()
        self.leases.pop((self.key, lease.owner), None)

    async def force_unlock(self) -> bool:
        """Operators only: delete the lock whoever holds it, and wake its waiters."""
        return bool(await self.scripts.force_release(keys=[self.key, self.channel]))

    async def is_locked(self) -> bool:
        return await self.scripts.exists(self.key)
