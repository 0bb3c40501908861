"""Lock errors.

LockError
├── LockTimeout        the wait time ran out before the lock was free (retriable)
├── LockNotOwnedError  unlock by a task that does not hold the lock (a bug, not retriable)
└── LockLostError      the lease ran out or was taken away while held (retriable; the
                       holder's work must fail rather than commit)
"""


class LockError(Exception):
    """Base of the lock's errors."""


class LockTimeout(LockError):
    """The wait time ran out before the lock was free; try again later."""


class LockNotOwnedError(LockError):
    """Unlock by a task that does not hold the lock: a bug."""


class LockLostError(LockError):
    """The lease ran out or was taken away while held."""
