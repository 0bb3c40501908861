"""Lock errors.

LockError
├── LockTimeout        the wait time ran out before the lock was free (retriable)
├── LockNotOwnedError  unlock by a task that does not hold the lock (a bug, not retriable)
└── LockLostError      the lease ran out or was taken away while held (retriable; the
                       holder's work must fail rather than commit)
"""


class LockError(Exception):
    retriable = False


class LockTimeout(LockError):
    retriable = True


class LockNotOwnedError(LockError):
    retriable = False


class LockLostError(LockError):
    retriable = True
