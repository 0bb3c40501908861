import asyncio

from shared.lock.pubsub import Signal
from testkit.waiting import eventually


async def until_waiting(signal: Signal, count: int) -> None:
    async def waiting() -> bool:
        return signal.waiting == count

    await eventually(waiting, timeout=10, interval=0.001)


async def test_notify_wakes_exactly_one_waiter():
    signal = Signal()
    waiters = [asyncio.create_task(signal.wait(5)) for _ in range(3)]
    await until_waiting(signal, 3)
    signal.notify_one()
    done, pending = await asyncio.wait(waiters, timeout=0.2)
    assert len(done) == 1 and len(pending) == 2
    signal.notify_all()
    assert all(await asyncio.gather(*pending))


async def test_notify_with_nobody_waiting_is_kept_for_the_next_waiter():
    signal = Signal()
    signal.notify_one()
    assert await signal.wait(0)


async def test_wait_times_out_without_a_notify():
    assert not await Signal().wait(0.01)


async def test_a_wake_up_is_not_lost_when_its_waiter_is_cancelled():
    signal = Signal()
    first = asyncio.create_task(signal.wait(5))
    await until_waiting(signal, 1)
    second = asyncio.create_task(signal.wait(0.5))
    await until_waiting(signal, 2)
    signal.notify_one()
    first.cancel()
    results = await asyncio.gather(first, second, return_exceptions=True)
    outcome = ["cancelled" if isinstance(r, asyncio.CancelledError) else r for r in results]
    # The one wake-up is used exactly once: the first waiter still took it (the second then
    # times out), or the cancelled first handed it on to the second.
    assert outcome in ([True, False], ["cancelled", True])
