"""Idempotency records in Redis: the first request with a key runs, repeats replay its answer.

    store.begin(key, fingerprint) -> Started | Replay | InProgress | Mismatch
    store.complete(started, status, body)   # keep the answer for the TTL (24 h by default)
    store.release(started)                  # forget it: the client may retry (4xx/503 cases)

A running record expires after a short TTL of its own, so a crashed process does not block
the key for a day; the database's unique key is the second line of defence behind it.
"""

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

_BEGIN = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
return redis.call('get', KEYS[1])
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


class IdempotencyStore:
    def __init__(
        self, redis: Redis, namespace: str, ttl_seconds: int, running_ttl_seconds: int
    ) -> None:
        self.namespace = namespace
        self.ttl_seconds = ttl_seconds
        self.running_ttl_seconds = running_ttl_seconds
        self._begin = redis.register_script(_BEGIN)
        self._complete = redis.register_script(_COMPLETE)
        self._release = redis.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"idem:{self.namespace}:{key}"

    async def begin(self, key: str, fingerprint: str) -> Decision:
        token = uuid.uuid4().hex
        record = orjson.dumps({"state": "running", "fingerprint": fingerprint, "token": token})
        existing = await self._begin(keys=[self._key(key)], args=[record, self.running_ttl_seconds])
        if existing is None:
            return Started(key, token, fingerprint)
        stored = orjson.loads(existing)
        if stored["fingerprint"] != fingerprint:
            return Mismatch()
        if stored["state"] == "done":
            return Replay(stored["status"], stored["body"])
        return InProgress()

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
