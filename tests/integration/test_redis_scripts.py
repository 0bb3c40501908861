"""Scripts over one pipelined connection (shared/redis_scripts.py), against real Redis servers:
replies reach their own callers, errors and cancels do not shift them, and a lost, slow or
restarted server gives redis-py's own exceptions and then heals."""

import asyncio
import uuid

import pytest
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry

from shared.redis_client import create_redis, create_retrying_redis
from shared.redis_scripts import PipelinedRedis, PipelinedScript, ScriptPipeline
from shared.settings import ServiceSettings
from testkit.waiting import eventually

pytestmark = pytest.mark.integration

ECHO = "return {KEYS[1], ARGV[1]}"
INCR = "return redis.call('incrby', KEYS[1], ARGV[1])"
FAIL = "return redis.error_reply('ERR refused ' .. ARGV[1])"
# Busy for ARGV[1] ms: the server answers nothing else meanwhile.
BUSY = """local t = redis.call('time'); local stop = t[1] * 1000000 + t[2] + ARGV[1] * 1000
repeat t = redis.call('time') until t[1] * 1000000 + t[2] >= stop
return 1"""


def _script(url: str, source: str, timeout: float = 3.0, retry: Retry | None = None):
    return PipelinedScript(ScriptPipeline(url, timeout, timeout), source, retry)


async def test_many_callers_at_once_each_get_their_own_reply():
    echo = _script(ServiceSettings().redis_url, ECHO)
    try:
        calls = [echo(keys=[f"k{n}"], args=[n]) for n in range(2000)]
        replies = await asyncio.gather(*calls)
        assert replies == [[f"k{n}".encode(), str(n).encode()] for n in range(2000)]
    finally:
        await echo.pipeline.close()


async def test_the_clients_scripts_are_pipelined_and_write_to_the_urls_database():
    settings = ServiceSettings()
    client = create_redis(settings)
    plain = Redis.from_url(settings.redis_url)
    key = f"scripts-test:{uuid.uuid4().hex}"
    try:
        assert isinstance(client, PipelinedRedis)
        incr = client.register_script(INCR)
        assert isinstance(incr, PipelinedScript)
        counts = await asyncio.gather(*(incr(keys=[key], args=[2]) for _ in range(10)))
        assert sorted(counts) == list(range(2, 22, 2))
        assert await plain.get(key) == b"20"  # the db in REDIS_URL, selected on connect
    finally:
        await plain.delete(key)
        await plain.aclose()
        await client.aclose()


async def test_a_client_built_scripts_with_another_shares_its_connection_not_its_retries():
    settings = ServiceSettings()
    owner = create_redis(settings)
    borrower = create_retrying_redis(settings, scripts_with=owner)
    key = f"scripts-test:{uuid.uuid4().hex}"
    try:
        assert isinstance(owner, PipelinedRedis) and isinstance(borrower, PipelinedRedis)
        assert borrower.script_pipeline is owner.script_pipeline
        assert owner.script_retry is None and borrower.script_retry is not None
        mine, theirs = owner.register_script(INCR), borrower.register_script(INCR)
        # Sent in one loop turn: one write, both replies in order, one connection.
        assert await asyncio.gather(mine(keys=[key], args=[1]), theirs(keys=[key], args=[2])) == [
            1,
            3,
        ]
        connection = owner.script_pipeline._connection
        await borrower.aclose()  # not the owner: the connection stays open
        assert connection is not None and not connection.lost
        assert owner.script_pipeline._connection is connection
        assert await mine(keys=[key], args=[1]) == 4
    finally:
        await owner.delete(key)
        await owner.aclose()


async def test_switched_off_the_client_is_redis_pys_own():
    client = create_redis(ServiceSettings(redis_pipelined_scripts=False))
    try:
        assert type(client) is Redis
    finally:
        await client.aclose()


async def test_an_error_reply_is_its_callers_alone():
    settings = ServiceSettings()
    fail, echo = _script(settings.redis_url, FAIL), _script(settings.redis_url, ECHO)
    echo.pipeline = fail.pipeline  # one connection for both
    try:
        results = await asyncio.gather(
            *(
                (fail if n % 3 == 0 else echo)(keys=["k"], args=[n])
                for n in range(300)
            ),
            return_exceptions=True,
        )  # fmt: skip
        for n, result in enumerate(results):
            if n % 3 == 0:
                assert isinstance(result, redis.exceptions.ResponseError)
                assert str(result) == f"ERR refused {n}"
            else:
                assert result == [b"k", str(n).encode()]
    finally:
        await fail.pipeline.close()


async def test_a_script_the_server_does_not_know_is_loaded(redis_server):
    echo = _script(redis_server.url, ECHO)
    admin = Redis.from_url(redis_server.url)
    try:
        assert await echo(keys=["a"], args=["1"]) == [b"a", b"1"]
        await admin.script_flush()
        assert (await admin.script_exists(echo.sha)) == [False]
        assert await echo(keys=["b"], args=["2"]) == [b"b", b"2"]
        assert (await admin.script_exists(echo.sha)) == [True]
    finally:
        await admin.aclose()
        await echo.pipeline.close()


async def _sent(pipeline: ScriptPipeline, count: int) -> None:
    async def all_sent() -> bool:
        return pipeline.in_flight >= count

    await eventually(all_sent, timeout=10, interval=0.001, message="commands never sent")


async def test_a_cancelled_caller_does_not_shift_the_replies_of_the_others(redis_server):
    pipeline = ScriptPipeline(redis_server.url, 3, 3)
    busy = PipelinedScript(pipeline, BUSY, None)
    echo = PipelinedScript(pipeline, ECHO, None)
    try:
        await echo(keys=["warm"], args=["up"])  # connected and loaded
        await busy(args=[1])
        slow = asyncio.ensure_future(busy(args=[200]))
        behind = [asyncio.ensure_future(echo(keys=["k"], args=[n])) for n in range(5)]
        await _sent(pipeline, 6)  # the busy script runs, the echoes queue behind it
        behind[2].cancel()
        slow.cancel()
        answers = await asyncio.gather(*behind, return_exceptions=True)
        assert isinstance(answers[2], asyncio.CancelledError)
        assert [a for n, a in enumerate(answers) if n != 2] == [
            [b"k", str(n).encode()] for n in (0, 1, 3, 4)
        ]
        assert await echo(keys=["x"], args=["y"]) == [b"x", b"y"]
    finally:
        await pipeline.close()


async def test_a_server_slower_than_the_timeout_fails_every_waiting_call_then_heals(redis_server):
    pipeline = ScriptPipeline(redis_server.url, 0.2, 1)
    busy = PipelinedScript(pipeline, BUSY, None)
    echo = PipelinedScript(pipeline, ECHO, None)
    try:
        await echo(keys=["warm"], args=["up"])  # loaded, so the busy one is the slow part
        await busy(args=[1])
        calls = [busy(args=[1000]), echo(keys=["k"], args=["v"])]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, redis.exceptions.TimeoutError) for r in results), results
        # Redis is busy until the script ends: a new connection waits for it, then works.
        healed = PipelinedScript(ScriptPipeline(redis_server.url, 3, 3), ECHO, None)
        assert await healed(keys=["after"], args=["busy"]) == [b"after", b"busy"]
        await healed.pipeline.close()
        assert await echo(keys=["again"], args=["1"]) == [b"again", b"1"]
    finally:
        await pipeline.close()


async def test_a_killed_server_fails_calls_with_connection_errors_and_a_restart_heals(
    redis_server,
):
    echo = _script(redis_server.url, ECHO, timeout=1)
    try:
        assert await echo(keys=["before"], args=["kill"]) == [b"before", b"kill"]
        redis_server.kill()
        with pytest.raises(redis.exceptions.ConnectionError):
            await echo(keys=["down"], args=["1"])
        with pytest.raises(redis.exceptions.ConnectionError):
            await echo(keys=["still"], args=["down"])  # refused again, not hung
        redis_server.start()
        assert await echo(keys=["after"], args=["restart"]) == [b"after", b"restart"]
    finally:
        await echo.pipeline.close()


async def test_a_call_in_flight_when_the_server_dies_is_retried_by_the_retrying_client_only(
    redis_server,
):
    settings = ServiceSettings(
        redis_url=redis_server.url, redis_socket_timeout_seconds=2, redis_retries=100,
        redis_retry_backoff_seconds=0.05, redis_retry_backoff_max_seconds=0.05,
    )  # fmt: skip
    plain, retrying = create_redis(settings), create_retrying_redis(settings)
    try:
        plain_busy, retrying_busy = plain.register_script(BUSY), retrying.register_script(BUSY)
        assert await plain_busy(args=[1]) == 1
        assert await retrying_busy(args=[1]) == 1
        calls = [asyncio.ensure_future(s(args=[500])) for s in (retrying_busy, plain_busy)]
        assert isinstance(plain, PipelinedRedis) and isinstance(retrying, PipelinedRedis)
        await _sent(retrying.script_pipeline, 1)
        await _sent(plain.script_pipeline, 1)
        redis_server.kill()  # both calls wait for their replies
        redis_server.start()
        retried, not_retried = await asyncio.gather(*calls, return_exceptions=True)
        assert retried == 1
        # A lock script repeated after a lost reply could count a hold twice: the plain
        # client leaves that decision to its caller.
        assert isinstance(not_retried, redis.exceptions.ConnectionError)
        assert await plain_busy(args=[1]) == 1  # and heals on the next call
    finally:
        await plain.aclose()
        await retrying.aclose()


async def test_redis_pys_own_lock_works_on_the_client_with_pipelined_scripts(unique):
    """redis-py's Lock registers its scripts on the client and passes `client=` to them."""
    client = create_redis(ServiceSettings())
    other = create_redis(ServiceSettings(redis_pipelined_scripts=False))
    try:
        lock = client.lock(f"scripts-test:lock:{unique}", timeout=10)
        assert await lock.acquire(blocking=False)
        assert not await other.lock(f"scripts-test:lock:{unique}").acquire(blocking=False)
        assert await lock.extend(5)
        await lock.release()
        assert await other.lock(f"scripts-test:lock:{unique}", timeout=5).acquire(blocking=False)
        echo = client.register_script(ECHO)
        assert await echo(keys=["k"], args=["v"], client=other) == [b"k", b"v"]  # run by other
    finally:
        await other.aclose()
        await client.aclose()
