"""Batcher: a job for an idle key runs at once in its caller's task; jobs that arrive while
it runs queue and go together, in arrival order, in the next batch."""

import asyncio

import pytest

from shared.batching import Batcher


async def _nothing() -> None:
    return None


async def tasks_started() -> None:
    """Return once every task created before this call has run up to its first wait: the
    loop runs ready tasks in the order they were scheduled."""
    await asyncio.create_task(_nothing())


class Recorder:
    """A run_batch that records each batch and the task it ran in, and can be held open."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.tasks: list[asyncio.Task | None] = []
        self.sizes: list[int] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def run_batch(self, key: str, jobs: list[str]) -> list[str | Exception]:
        self.batches.append(list(jobs))
        self.tasks.append(asyncio.current_task())
        if key == "w1":  # the key a test holds open
            self.entered.set()
            await self.release.wait()
        return [ValueError(job) if job.startswith("bad") else f"{key}:{job}" for job in jobs]

    def batcher(self, linger: float = 0.0) -> Batcher[str, str]:
        return Batcher(self.run_batch, max_size=10, linger=linger, observe=self.sizes.append)

    async def one_running_one_queued(
        self, batcher: Batcher[str, str]
    ) -> tuple[asyncio.Task[str], asyncio.Task[str]]:
        """Job "a" for w1 running alone and held open, job "b" queued behind it."""
        self.release.clear()
        running = asyncio.create_task(batcher.submit("w1", "a"))
        await self.entered.wait()
        queued = asyncio.create_task(batcher.submit("w1", "b"))
        await tasks_started()
        return running, queued


async def test_a_job_for_an_idle_key_runs_in_its_callers_task() -> None:
    recorder = Recorder()
    batcher = recorder.batcher()
    assert await batcher.submit("w1", "a") == "w1:a"
    assert recorder.tasks == [asyncio.current_task()]
    assert recorder.sizes == [1]
    assert batcher.queued("w1") == 0


async def test_jobs_arriving_meanwhile_queue_and_go_together_in_order() -> None:
    recorder = Recorder()
    batcher = recorder.batcher()
    recorder.release.clear()
    first = asyncio.create_task(batcher.submit("w1", "a"))
    await recorder.entered.wait()
    behind = [asyncio.create_task(batcher.submit("w1", job)) for job in ("b", "c", "d")]
    other = asyncio.create_task(batcher.submit("w2", "x"))  # another key is not held up
    assert await other == "w2:x"
    await tasks_started()
    assert batcher.queued("w1") == 3
    recorder.release.set()
    assert await first == "w1:a"
    assert [await task for task in behind] == ["w1:b", "w1:c", "w1:d"]
    assert [b for b in recorder.batches if b[0] != "x"] == [["a"], ["b", "c", "d"]]
    await batcher.close()


async def test_a_lone_jobs_error_is_its_callers_and_only_its() -> None:
    recorder = Recorder()
    batcher = recorder.batcher()
    with pytest.raises(ValueError, match="bad"):
        await batcher.submit("w1", "bad")
    assert await batcher.submit("w1", "good") == "w1:good"

    async def broken(key: str, jobs: list[str]) -> list[str | Exception]:
        raise ConnectionError("database")

    with pytest.raises(ConnectionError):
        await Batcher(broken, max_size=10).submit("w1", "a")


async def test_jobs_queued_behind_a_cancelled_lone_job_still_run() -> None:
    recorder = Recorder()
    batcher = recorder.batcher()
    first, second = await recorder.one_running_one_queued(batcher)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    recorder.release.set()
    assert await second == "w1:b"
    await batcher.close()


async def test_with_a_linger_every_job_waits_in_the_queue_for_company() -> None:
    recorder = Recorder()
    batcher = recorder.batcher(linger=0.001)
    answers = await asyncio.gather(*(batcher.submit("w1", job) for job in ("a", "b")))
    assert answers == ["w1:a", "w1:b"]
    assert recorder.batches == [["a", "b"]]
    assert recorder.tasks[0] is not asyncio.current_task()


async def test_a_queued_job_whose_caller_is_cancelled_still_runs() -> None:
    recorder = Recorder()
    batcher = recorder.batcher()
    first, queued = await recorder.one_running_one_queued(batcher)
    queued.cancel()
    recorder.release.set()
    assert await first == "w1:a"
    await batcher.close()
    assert recorder.batches == [["a"], ["b"]]
