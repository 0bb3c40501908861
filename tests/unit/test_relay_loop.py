"""The relay's loop without servers: when it publishes again, and when it waits."""

import asyncio
from typing import Any, cast

from aiokafka.errors import KafkaConnectionError

from services.payment.adapters.outbox import OutboxQueue
from services.payment.relay import OutboxRelay, RelayConfig

HOUR = 3600.0
NO_OUTBOX = cast(OutboxQueue, None)  # publish_batch and pruning are scripted: never touched


class ScriptedRelay(OutboxRelay):
    """A relay whose batches run a script instead of touching MariaDB and Kafka."""

    def __init__(self, script: list[Any], **config: Any) -> None:
        options = {"poll_interval": HOUR, "retry_backoff": HOUR, "prune_interval": HOUR, **config}
        super().__init__(NO_OUTBOX, RelayConfig("127.0.0.1:1", [], **options))
        self.script = script
        self.calls = 0
        self.finished = asyncio.Event()

    async def publish_batch(self) -> int:
        step = self.script[self.calls]
        self.calls += 1
        if self.calls == len(self.script):
            self.finished.set()
        return step(self)

    async def _prune_if_due(self) -> None:
        return None


def announce_commit(relay: OutboxRelay) -> int:
    relay.wake()  # a payment commits while this batch runs, after its SELECT
    return 0


async def run_script(relay: ScriptedRelay) -> None:
    relay.start()
    try:
        # Without the behaviour under test the relay would wait an hour: the test times out.
        await asyncio.wait_for(relay.finished.wait(), 30)
    finally:
        await relay.stop()


async def test_a_commit_during_a_batch_starts_the_next_batch_at_once() -> None:
    relay = ScriptedRelay([announce_commit, lambda _: 0])
    await run_script(relay)
    assert relay.calls == 2


async def test_a_full_batch_is_followed_at_once_by_the_next() -> None:
    relay = ScriptedRelay([lambda _: 10, lambda _: 10, lambda _: 3], batch_size=10)
    await run_script(relay)
    assert relay.calls == 3


async def test_a_kafka_error_is_retried_after_the_backoff() -> None:
    def fail(_: OutboxRelay) -> int:
        raise KafkaConnectionError("broker down")

    relay = ScriptedRelay([fail, lambda _: 0], retry_backoff=0.01)
    await run_script(relay)
    assert relay.calls == 2


async def test_under_steady_load_batches_start_an_interval_apart() -> None:
    """Every batch sees a commit come in: the next starts once the interval since the last
    start is over, not at once (a slow machine only makes the gaps longer)."""
    starts: list[float] = []

    def busy(relay: OutboxRelay) -> int:
        starts.append(asyncio.get_running_loop().time())
        return announce_commit(relay)

    relay = ScriptedRelay([busy] * 4, interval=0.05, linger=0.0)
    await run_script(relay)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.05
