"""Idempotency records in Redis: the first request with a key runs, repeats replay its answer.

    store.begin(key, fingerprint) -> Started | Replay | InProgress | Mismatch
    async with store.leased(started): ...   # run the request; the running record lives on
    store.complete(started, status, body)   # keep the answer for the TTL (24 h by default)
    store.release(started)                  # forget it: the client may retry (4xx/503 cases)

The running record is a lease: it expires after `lease_seconds` unless the request's
process renews it, every `renew_seconds` while the request runs (for `max_running_seconds`
at most: beyond every timeout it has, a request is stuck, and its key is let go). A
process that dies frees the key within one lease, and a retry then runs the request again,
where the database (a unique key per order_id, the charge row and the bank's record per
charge_id) makes sure nothing happens twice.

A running record also names the process running it (its session's instance id,
shared/session.py). A repeat that finds a running record whose process has no session any
more (killed, or cut off longer than the session's ttl) takes the record over and runs the
request itself, at once rather than a lease later: one script checks that the record and
the dead session are still as they were seen. While the process lives, the repeat gets
InProgress (409 REQUEST_IN_PROGRESS) as always.

Every script here is safe to repeat, so the client may retry them on a connection error:
a record carries the token of the request that wrote it, and `begin` that finds its own
token (its first try was applied, the answer was lost) reports Started.
"""

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from shared import ids
from shared.background import Deferred, set_within
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.session import Session, session_key

log = logging.getLogger(__name__)

_BEGIN = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('get', KEYS[1])
"""

_TAKE_OVER = """
-- KEYS[1] record, KEYS[2] its owner's session; ARGV[1] the record's token as seen, ARGV[2] the
-- session's value as seen ('' none: over), ARGV[3] the new record, ARGV[4] lease ms,
-- ARGV[5] the new token. 1 taken over, 2 the record had gone; otherwise the record as it is now.
local current = redis.call('get', KEYS[1])
if current then
  local record = cjson.decode(current)
  if record['token'] == ARGV[5] then return 1 end
  if record['token'] ~= ARGV[1] or record['state'] ~= 'running' then return current end
  if (redis.call('get', KEYS[2]) or '') ~= ARGV[2] then return current end
  redis.call('set', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return 1
end
redis.call('set', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 2
"""

_RENEW = """
local current = redis.call('get', KEYS[1])
if not current then return 0 end
local record = cjson.decode(current)
if record['token'] ~= ARGV[1] or record['state'] ~= 'running' then return 0 end
return redis.call('pexpire', KEYS[1], ARGV[2])
"""

_COMPLETE = """
local current = redis.call('get', KEYS[1])
if not current or cjson.decode(current)['token'] ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

_RELEASE = """
local current = redis.call('get', KEYS[1])
if current and cjson.decode(current)['token'] == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Started:
    key: str
    token: str
    fingerprint: str


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class InProgress:
    pass


@dataclass(frozen=True)
class Mismatch:
    pass


Decision = Started | Replay | InProgress | Mismatch


def _decide(stored: dict[str, Any], started: Started) -> Decision:
    """What a request that found `stored` under its key does."""
    if stored["token"] == started.token:  # our own first try was applied; its answer was lost
        return started
    if stored["fingerprint"] != started.fingerprint:
        return Mismatch()
    if stored["state"] == "done":
        return Replay(stored["status"], stored["body"])
    return InProgress()


class IdempotencyStore:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        ttl_seconds: int,
        lease_seconds: float,
        renew_seconds: float,
        max_running_seconds: float = 30.0,
        session: Session | None = None,
        on_takeover: Callable[[], None] | None = None,
    ) -> None:
        """With a session, running records name this process, and a repeat takes over the
        record of a process whose session is over (`on_takeover` counts it)."""
        self.session = session
        self.on_takeover = on_takeover
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.renew_seconds = renew_seconds
        self.max_running_seconds = max_running_seconds
        self._begin = redis.register_script(_BEGIN)
        self._take_over = redis.register_script(_TAKE_OVER)
        self._renew = redis.register_script(_RENEW)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"idem:{self.namespace}:{key}"

    async def begin(self, key: str, fingerprint: str) -> Decision:
        token = ids.token_hex(16)
        running: dict[str, Any] = {"state": "running", "fingerprint": fingerprint, "token": token}
        if self.session is not None:
            running["owner"] = self.session.instance_id
        record = orjson.dumps(running)
        existing = await self._begin(keys=[self._key(key)], args=[record, self.lease_ms])
        if existing is None:
            return Started(key, token, fingerprint)
        stored = orjson.loads(existing)
        decision = _decide(stored, Started(key, token, fingerprint))
        if isinstance(decision, InProgress):
            return await self._take_over_if_dead(stored, Started(key, token, fingerprint), record)
        return decision

    async def _take_over_if_dead(
        self, stored: dict[str, Any], started: Started, record: bytes
    ) -> Decision:
        owner = stored.get("owner")
        if self.session is None or not owner:
            return InProgress()
        try:
            seen = await self.session.lapsed(owner)
            if seen is None:
                return InProgress()  # its process lives: a true duplicate
            result = await self._take_over(
                keys=[self._key(started.key), session_key(owner)],
                args=[stored["token"], seen, record, self.lease_ms, started.token],
            )
        except DEPENDENCY_ERRORS as exc:
            log.warning("owner of %r unknown (%r); in progress as far as we know", started.key, exc)
            return InProgress()
        if result == 2:
            return started
        if result != 1:
            return _decide(orjson.loads(result), started)
        log.warning("%r was running in %s, which has no session: taken over", started.key, owner)
        if self.on_takeover is not None:
            self.on_takeover()
        return started

    @contextlib.asynccontextmanager
    async def leased(self, started: Started) -> AsyncIterator[None]:
        """Keep the running record alive while the block runs."""
        finished = asyncio.Event()
        # Most requests end before their first renewal is due: until then the renewer is a
        # timer, not a task created and cancelled on every request.
        renewer = Deferred(
            self.renew_seconds,
            lambda: self._keep_renewing(started, finished),
            name=f"lease:{started.key}",
        )
        try:
            yield
        finally:
            # The flag, not the cancel, is what stops the renewer: on Python 3.11 a cancel
            # that lands while redis-py sends a command is lost (its asyncio.wait_for returns
            # the finished write instead of raising), and the request would wait for the
            # renewer's last renewal, max_running_seconds later.
            finished.set()
            await renewer.stop()

    async def _keep_renewing(self, started: Started, finished: asyncio.Event) -> None:
        """Renew now (the first renewal is due), then every renew_seconds until finished."""
        # A request still running after every timeout it has is stuck somewhere: the lease
        # stops, so a retry can settle the key from the database and the bank.
        renewals = int(self.max_running_seconds / self.renew_seconds)
        for renewal in range(renewals):
            if renewal and await set_within(finished, self.renew_seconds):
                return
            if finished.is_set():
                return
            try:
                renewed = await self._renew(
                    keys=[self._key(started.key)], args=[started.token, self.lease_ms]
                )
            except DEPENDENCY_ERRORS as exc:
                log.warning("lease of %r not renewed (%r); retrying", started.key, exc)
                continue
            if not renewed:
                # Expired (Redis lost it or this process stalled): a retry may run now, and
                # the database's unique keys keep the two from both taking effect.
                log.warning("lease of %r lost while the request runs", started.key)
                return
        if not finished.is_set():
            log.warning("lease of %r not renewed after %gs: the request looks stuck",
                        started.key, self.max_running_seconds)  # fmt: skip

    async def complete(self, started: Started, status: int, body: dict[str, Any]) -> bool:
        record = orjson.dumps(
            {
                "state": "done",
                "fingerprint": started.fingerprint,
                "token": started.token,
                "status": status,
                "body": body,
            }
        )
        done = await self._complete(
            keys=[self._key(started.key)], args=[started.token, record, self.ttl_seconds]
        )
        return bool(done)

    async def release(self, started: Started) -> None:
        await self._release(keys=[self._key(started.key)], args=[started.token])
