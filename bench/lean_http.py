"""A minimal keep-alive HTTP/1.1 client for load generation: JSON POSTs, status codes back.

The load generator shares the machine with what it measures, so it should cost as little
as possible: this client costs about a fifth of aiohttp's CPU per request. It understands
exactly what the services answer (Content-Length bodies, no chunking) and nothing else.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable

import orjson

# uvicorn closes a keep-alive connection idle for 5 s (its timeout_keep_alive): one idle
# longer than this is closed here instead of sent a request the server will never read.
IDLE_SECONDS = 4.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeanClient:
    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str],
        connections: int,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = port
        self.limit = connections
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.opened = 0  # open now
        self.connects = 0  # opened in all
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = (
            asyncio.Queue()
        )
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.head = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"

    async def _connection(self) -> Connection:
        while True:
            if self.idle.empty() and self.opened < self.limit:
                self.opened += 1
                self.connects += 1
                try:
                    return await asyncio.open_connection(self.host, self.port)
                except BaseException:
                    self.opened -= 1
                    raise
            reader, writer, used = await self.idle.get()
            if self.clock() - used < self.idle_seconds:
                return reader, writer
            writer.close()  # the server may have closed it already
            self.opened -= 1

    async def post(self, path: str, body: object) -> int:
        """POST `body` as JSON; the response status (the body is read and dropped)."""
        payload = orjson.dumps(body)
        request = (
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        reader, writer = await self._connection()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        self.idle.put_nowait((reader, writer, self.clock()))
        return status

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer, _ = self.idle.get_nowait()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
