"""Lua scripts over one pipelined connection: the hot path's Redis calls without redis-py's
per-command machinery.

A payment runs four scripts (idempotency begin and complete, lock acquire and release).
redis-py spends about 110 µs of client CPU on each: a pool checkout, a health check, a retry
wrapper, a timeout per read, an encoder pass per argument. A script call needs none of it:

- every caller's EVALSHA goes to one TCP connection, many in flight together, and the
  commands sent in one turn of the event loop leave in one write; Redis answers in order,
  so each reply resolves the oldest waiting future;
- hiredis (the C parser redis-py uses too) parses the replies;
- one timer per connection, not one per command, aborts a connection whose oldest command
  has waited REDIS_SOCKET_TIMEOUT_SECONDS: every command on it then fails with a
  TimeoutError, like redis-py's socket timeout;
- a connection the server closed fails its waiting commands with a ConnectionError, and the
  next call connects again. Both are redis-py's own exception classes, so every caller's
  handling of an outage (503, database fallback, a node counted as down) is unchanged.

Nothing waits for a pool slot: there is no pool. `PipelinedRedis` is redis-py's client with
only `register_script` swapped, so pub/sub and plain commands stay redis-py's. Switched off
by REDIS_PIPELINED_SCRIPTS=false.
"""

import asyncio
import collections
import hashlib
import logging
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry

log = logging.getLogger(__name__)

__all__ = ["PipelinedRedis", "ScriptPipeline", "PipelinedScript"]

_ERRORS: dict[str, type[redis.exceptions.RedisError]] = {
    "NOSCRIPT": redis.exceptions.NoScriptError,
    "LOADING": redis.exceptions.BusyLoadingError,  # a ConnectionError: Redis is starting
    "READONLY": redis.exceptions.ReadOnlyError,
    "NOAUTH": redis.exceptions.AuthenticationError,
    "WRONGPASS": redis.exceptions.AuthenticationError,
    "OOM": redis.exceptions.OutOfMemoryError,
}


def _reply_error(message: str) -> redis.exceptions.RedisError:
    """The redis-py exception an error reply stands for."""
    code, _, rest = message.partition(" ")
    error = _ERRORS.get(code)
    return error(rest) if error is not None else redis.exceptions.ResponseError(message)


def pack(args: Sequence[Any]) -> bytes:
    """One command in RESP, encoded as redis-py encodes arguments (by hiredis, in C)."""
    try:
        return hiredis.pack_command(tuple(args))
    except TypeError as exc:  # a bool, None, any other type: refused as redis-py refuses it
        raise redis.exceptions.DataError(f"Invalid input in {args!r}: {exc}") from None


class _Connection(asyncio.Protocol):
    """One connection; commands in flight wait in a FIFO for their replies."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.lost = False
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(replyError=_reply_error)
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timed_out = False
        self._outgoing: list[bytes] = []  # sent by callers this loop turn, not yet written

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, payload: bytes) -> "asyncio.Future[Any]":
        transport = self._transport
        if self.lost or transport is None or transport.is_closing():
            raise redis.exceptions.ConnectionError(f"connection to {self.address} is closed")
        future = self._loop.create_future()
        deadline = self._loop.time() + self.timeout
        self._waiting.append((future, deadline))
        if not self._outgoing:
            self._loop.call_soon(self._write)
        self._outgoing.append(payload)
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._check_oldest)
        return future

    def _write(self) -> None:
        """Everything sent since the last write, in one: callers of the same loop turn
        share a system call (a write on a loopback socket costs more than a script's parse)."""
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None and not self.lost and not self._transport.is_closing():
            self._transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future, _ = self._waiting.popleft()
                if future.done():  # its caller was cancelled; the reply still came in order
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            log.error("redis %s: unreadable reply (%r); connection dropped", self.address, exc)
            self.close()

    def _check_oldest(self) -> None:
        self._timer = None
        if not self._waiting or self.lost:
            return
        deadline = self._waiting[0][1]
        if deadline > self._loop.time():
            self._timer = self._loop.call_at(deadline, self._check_oldest)
            return
        log.warning("redis %s: no reply within %gs; connection dropped", self.address, self.timeout)
        self._timed_out = True
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        error: redis.exceptions.RedisError
        if self._timed_out:
            error = redis.exceptions.TimeoutError(f"Timeout reading from {self.address}")
        else:
            error = redis.exceptions.ConnectionError(
                f"Connection to {self.address} lost: {exc or 'closed by server'}"
            )
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost follows and fails what waits


class ScriptPipeline:
    """Commands over one pipelined connection to one Redis server, connected on first use and
    again after a loss."""

    def __init__(self, url: str, timeout: float, connect_timeout: float) -> None:
        options = parse_url(url)
        self.path: str | None = options.get("path")
        self.host: str = options.get("host", "127.0.0.1")
        self.port: int = int(options.get("port", 6379))
        self.address = self.path or f"{self.host}:{self.port}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._handshake: list[tuple[Any, ...]] = []
        if options.get("password"):
            user = options.get("username")
            self._handshake.append(("AUTH", user, options["password"]) if user else
                                   ("AUTH", options["password"]))  # fmt: skip
        if int(options.get("db", 0)):
            self._handshake.append(("SELECT", int(options["db"])))
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self._failure: tuple[float, Exception] | None = None

    @property
    def in_flight(self) -> int:
        """Commands sent and not answered yet."""
        connection = self._connection
        return 0 if connection is None or connection.lost else connection.in_flight

    async def execute(self, *args: Any) -> Any:
        connection = self._connection
        if connection is None or connection.lost:
            connection = await self._connect()
        return await connection.send(pack(args))

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        async with self._connecting:
            if self._connection is not None and not self._connection.lost:
                return self._connection
            if self._failure is not None and self._failure[0] >= asked:
                # Tried while this caller waited its turn: do not queue one timeout per caller.
                raise redis.exceptions.ConnectionError(str(self._failure[1]))
            try:
                self._connection = await self._open()
            except redis.exceptions.ConnectionError as exc:
                self._failure = (loop.time(), exc)
                raise
            return self._connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = _Connection(self.address, self.timeout)
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path:
                    await loop.create_unix_connection(lambda: connection, self.path)
                else:
                    await loop.create_connection(lambda: connection, self.host, self.port)
                for command in self._handshake:
                    await connection.send(pack(command))
        except (OSError, TimeoutError) as exc:
            connection.close()
            raise redis.exceptions.ConnectionError(
                f"Error connecting to {self.address}: {exc!r}"
            ) from exc
        except redis.exceptions.RedisError:
            connection.close()
            raise
        return connection

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PipelinedScript:
    """A Lua script, called like redis-py's: `await script(keys=[...], args=[...])`."""

    def __init__(
        self, pipeline: ScriptPipeline, source: str, retry: Retry | None, owner: Any = None
    ) -> None:
        self.pipeline = pipeline
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.retry = retry
        self.owner = owner  # the client that registered it

    async def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        """`client`, as redis-py's scripts take it (its Lock passes one): another client or
        a pipeline runs the script itself."""
        if client is not None and client is not self.owner:
            return await _on(client, self.sha, self.source, keys, args)
        if self.retry is None:
            return await self._run(keys, args)
        return await self.retry.call_with_retry(lambda: self._run(keys, args), _retrying)

    async def _run(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self.pipeline.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # a new or restarted server: load it now
            return await self.pipeline.execute("EVAL", self.source, len(keys), *keys, *args)


async def _on(client: Any, sha: str, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        return await client.eval(source, len(keys), *keys, *args)


async def _retrying(error: Exception) -> None:
    log.debug("redis script failed (%r); retrying", error)


class PipelinedRedis(Redis):
    """redis-py's client whose registered scripts run over a ScriptPipeline."""

    def __init__(
        self,
        *,
        pipeline: ScriptPipeline,
        script_retry: Retry | None,
        owns_pipeline: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.script_pipeline = pipeline
        self.script_retry = script_retry
        self.owns_pipeline = owns_pipeline  # False: another client's, which closes it

    def register_script(self, script: str | bytes) -> PipelinedScript:  # type: ignore[override]
        source = script.decode() if isinstance(script, bytes) else script
        return PipelinedScript(self.script_pipeline, source, self.script_retry, owner=self)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.owns_pipeline:
            await self.script_pipeline.close()
        await super().aclose(close_connection_pool)
