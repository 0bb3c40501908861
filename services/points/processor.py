"""Handles one consumed payment event: apply once, retry what may pass, dead-letter the rest.

Faust acknowledges an event whose handler raised, so nothing may escape `handle`: every
outcome is applied, ignored, or dead-lettered (and the dead letter is acknowledged by
Kafka) before the event's offset can be committed. Retry or dead letter is decided by the
exception's class: dependency errors (database down, lock wait timeout, deadlock) are
retried; everything else cannot improve with time and goes to the dead-letter topic.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from services.points.dead_letters import ConsumedMessage, DeadLetters
from services.points.store import PointsStore
from shared import tracing
from shared.events import InvalidEvent, UnknownEventType, decode
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.tracing import TraceParent

log = logging.getLogger(__name__)


class EventProcessor:
    def __init__(
        self,
        store: PointsStore,
        dead_letters: DeadLetters,
        retries: int,
        backoff: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.retries = retries
        self.backoff = backoff
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
        attempt = 0
        while True:
            attempt += 1
            try:
                applied = await self.store.apply(event)
            except DEPENDENCY_ERRORS as failure:
                if attempt > self.retries:
                    self.counts["dead_lettered"] += 1
                    await self.dead_letters.publish(message, failure, attempts=attempt)
                    return
                self.counts["retries"] += 1
                log.warning("event %s attempt %d failed: %r", event.event_id, attempt, failure)
                await self.sleep(self.backoff)
                continue
            except Exception as failure:  # noqa: BLE001 - not retriable: dead-letter, never drop
                self.counts["dead_lettered"] += 1
                await self.dead_letters.publish(message, failure, attempts=attempt)
                return
            self.counts["applied" if applied else "duplicates"] += 1
            log.info("%s %s", event.event_type, "applied" if applied else "was applied before")
            return
