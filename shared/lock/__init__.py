"""A Redisson-style distributed lock with fencing tokens. It knows locks, nothing else:
transactions around a locked block belong to the service that has them."""

from shared.lock.client import Lease, LockService, RedisLock
from shared.lock.errors import LockError, LockLostError, LockNotOwnedError, LockTimeout

__all__ = [
    "Lease",
    "LockError",
    "LockLostError",
    "LockNotOwnedError",
    "LockService",
    "LockTimeout",
    "RedisLock",
]
