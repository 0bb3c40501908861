"""Taking over the lock of a holder whose process is gone.

A waiter that has waited `check_after` seconds asks whether the holder's process still has
its session (shared/session.py), and again every `check_after` seconds while it waits. When
the session is over, its next acquire names the dead instance and the script deletes the
lock, if that instance still holds it, and acquires it in the same step (on a majority of
nodes for the quorum lock). The new token is larger than the dead holder's, as for every
acquisition, so a holder that was only paused and comes back is refused at the wallet row.
When liveness cannot be read (its Redis is down) the waiter waits as it always did, for
the holder's lease to run out.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


class Liveness(Protocol):
    @property
    def instance_id(self) -> str: ...

    async def is_alive(self, instance_id: str) -> bool: ...


def _no_count() -> None:
    return None


def instance_of(owner: str) -> str:
    """The instance id in an owner id `<instance id>:<task id>`."""
    return owner.partition(":")[0]


@dataclass(frozen=True)
class Verdict:
    """What a check of the holder found: `dead` is what the next acquire may take over
    ("" for nothing), `why` says what was seen, for the line logged when a wait runs out."""

    dead: str
    why: str


@dataclass(frozen=True)
class Takeover:
    liveness: Liveness
    check_after: float = 1.0
    on_takeover: Callable[[], None] = field(default=_no_count)

    async def judge(self, lock_name: str, holder: str) -> Verdict:
        """The holder's instance id to take over if its session is over; else why not."""
        instance = instance_of(holder)
        if not instance:
            return Verdict("", "no holder named by the lock nodes")
        if instance == self.liveness.instance_id:
            return Verdict("", f"{holder} is of this process")
        try:
            alive = await self.liveness.is_alive(instance)
        except DEPENDENCY_ERRORS as exc:
            log.warning("lock %r: holder's liveness unknown (%r); waiting for its lease",
                        lock_name, exc)  # fmt: skip
            return Verdict("", f"{holder}: liveness unknown ({exc!r})")
        if alive:
            return Verdict("", f"{holder}: its session lives")
        log.warning("lock %r: holder %s has no session; taking the lock over", lock_name, instance)
        return Verdict(instance, f"{holder}: no session")
