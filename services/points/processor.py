"""Handles one consumed payment event: apply once, wait out outages, dead-letter poison.

Faust acknowledges an event whose handler raised, so nothing may escape `handle`: every
outcome is applied, ignored, or dead-lettered (and the dead letter is acknowledged by
Kafka) before the event's offset can be committed. What a failure means is decided by its
class (shared.infra_errors.is_outage):

- an outage (MariaDB unreachable, connection lost, lock wait timeout, ...): the event is
  tried again, with exponential backoff capped at `outage_backoff_max`, for as long as the
  outage lasts. The stream waits behind it: the agent holds at most POINTS_CONCURRENCY
  events at once, so no more than that are taken past it, and no offset past it is
  committed, so nothing is lost while the dependency is away.
- poison (a broken event, a row the database refuses, a bug): tried `retries` more times
  `backoff` apart, then dead-lettered; a malformed event is dead-lettered at once, since
  decoding it again cannot change the answer. The events held beside it go on meanwhile.

Events are handled concurrently (the agent's actors, POINTS_CONCURRENCY) and their writes
grouped into shared transactions (store.GroupCommit). Order does not matter to the points
rule: a cancellation applied before its completion takes back what the completion adds.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from services.points.dead_letters import ConsumedMessage, DeadLetters
from shared import tracing
from shared.events import InvalidEvent, PaymentEvent, UnknownEventType, decode
from shared.infra_errors import is_outage
from shared.tracing import TraceParent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3  # poison: tries after the first, `backoff` seconds apart
    backoff: float = 1.0
    outage_backoff: float = 0.5  # outage: first pause, doubled up to outage_backoff_max
    outage_backoff_max: float = 5.0

    def outage_pause(self, outage_attempt: int) -> float:
        return min(self.outage_backoff * 2 ** (outage_attempt - 1), self.outage_backoff_max)


class Applies(Protocol):
    """PointsStore, or GroupCommit in front of it."""

    async def apply(self, event: PaymentEvent) -> bool: ...


class EventProcessor:
    def __init__(
        self,
        store: Applies,
        dead_letters: DeadLetters,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.policy = policy
        self.sleep = sleep
        self.counts: Counter[str] = Counter()

    async def handle(self, message: ConsumedMessage) -> None:
        """Handle one message in the trace its producer sent (a new one if none)."""
        sent = TraceParent.parse(dict(message.headers).get(tracing.HEADER))
        with tracing.traced(sent.child() if sent is not None else None):
            await self._handle(message)

    async def _handle(self, message: ConsumedMessage) -> None:
        try:
            event = decode(message.value)
        except UnknownEventType as unknown:
            self.counts["ignored_unknown_type"] += 1
            log.info("ignored event of unknown type %s at offset %d", unknown, message.offset)
            return
        except InvalidEvent as invalid:
            self.counts["dead_lettered"] += 1
            await self.dead_letters.publish(message, invalid, attempts=1)
            return
        tracing.bind(event_id=event.event_id, order_id=event.order_id, user_id=event.user_id)
        await self._apply(message, event)

    async def _apply(self, message: ConsumedMessage, event: PaymentEvent) -> None:
        attempts = failures = outages = 0
        while True:
            attempts += 1
            try:
                applied = await self.store.apply(event)
            except Exception as failure:  # noqa: BLE001 - classified below; never dropped
                if is_outage(failure):
                    outages += 1
                    await self._wait_out_outage(event, failure, outages)
                    continue
                failures += 1
                if failures > self.policy.retries:
                    self.counts["dead_lettered"] += 1
                    await self.dead_letters.publish(message, failure, attempts=attempts)
                    return
                self.counts["retries"] += 1
                log.warning("event %s attempt %d failed: %r", event.event_id, attempts, failure)
                await self.sleep(self.policy.backoff)
                continue
            if outages:
                log.info("event %s applied after %d outage retries", event.event_id, outages)
            self.counts["applied" if applied else "duplicates"] += 1
            log.info("%s %s", event.event_type, "applied" if applied else "was applied before")
            return

    async def _wait_out_outage(self, event: PaymentEvent, failure: Exception, outages: int) -> None:
        self.counts["outage_retries"] += 1
        pause = self.policy.outage_pause(outages)
        log.warning("event %s: dependency unavailable (%r); stream paused, retry in %.1fs",
                    event.event_id, failure, pause)  # fmt: skip
        await self.sleep(pause)
