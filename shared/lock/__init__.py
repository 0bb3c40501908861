"""A Redisson-style distributed lock with fencing tokens, and the `@distributed_lock` decorator."""

from shared.lock.client import Lease, LockService, RedisLock
from shared.lock.decorator import Held, distributed_lock
from shared.lock.errors import LockError, LockLostError, LockNotOwnedError, LockTimeout
from shared.lock.strategies import DatabaseRowLocking, NotHeld, RedisLocking

__all__ = [
    "DatabaseRowLocking",
    "Held",
    "Lease",
    "LockError",
    "LockLostError",
    "LockNotOwnedError",
    "LockService",
    "LockTimeout",
    "NotHeld",
    "RedisLock",
    "RedisLocking",
    "distributed_lock",
]
