"""What the lock reports to its service's metrics: a callback per event, each a no-op unless
the service gives one."""

from collections.abc import Callable
from dataclasses import dataclass, field


def _no_count() -> None:
    return None


@dataclass(frozen=True)
class LockCounters:
    # A waiter's wake-up subscription was not confirmed within its pause: it polled instead.
    subscription_timeout: Callable[[], None] = field(default=_no_count)
    # A release that missed a lock node, left for the janitor to retry (janitor.py).
    release_missed: Callable[[], None] = field(default=_no_count)
