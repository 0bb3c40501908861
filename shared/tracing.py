"""W3C trace context (`traceparent`) carried through a request, an event and its log lines.

    00-<trace_id: 32 hex>-<parent_id: 16 hex>-<flags: 2 hex>

The trace of the work in hand and the ids worth logging with it (order_id, event_id, ...)
live in context variables, as OpenTelemetry keeps its context: an asyncio task sees what
its creator had, and setting them in one request never leaks into another.
"""

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import ids

HEADER = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    parent_id: str
    flags: str = "01"

    @classmethod
    def parse(cls, header: str | bytes | None) -> "TraceParent | None":
        """The header's trace context, or None when absent or malformed (then start anew)."""
        if header is None:
            return None
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        match = _FORMAT.match(text.strip().lower())
        if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
            return None
        return cls(match[1], match[2], match[3])

    @classmethod
    def new(cls) -> "TraceParent":
        return cls(ids.token_hex(16), ids.token_hex(8))

    def child(self) -> "TraceParent":
        """The same trace, a new span: what this process passes on."""
        return TraceParent(self.trace_id, ids.token_hex(8), self.flags)

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


_trace: ContextVar[TraceParent | None] = ContextVar("trace", default=None)
_fields: ContextVar[dict[str, str] | None] = ContextVar("log_fields", default=None)


def current() -> TraceParent | None:
    return _trace.get()


def log_fields() -> dict[str, str]:
    """The trace id and bound ids of the work in hand, for log lines."""
    trace = _trace.get()
    fields = _fields.get() or {}
    return {"trace_id": trace.trace_id, **fields} if trace is not None else dict(fields)


def bind(**fields: str) -> None:
    """Add ids (order_id=..., event_id=...) to every later log line of this context."""
    _fields.set({**(_fields.get() or {}), **fields})


@contextlib.contextmanager
def traced(trace: TraceParent | None, **fields: str) -> Iterator[TraceParent]:
    """Run the block in `trace` (a new one when None), with `fields` on its log lines."""
    active = trace or TraceParent.new()
    trace_token = _trace.set(active)
    fields_token = _fields.set(dict(fields))
    try:
        yield active
    finally:
        _fields.reset(fields_token)
        _trace.reset(trace_token)


class TraceMiddleware:
    """Continues the caller's `traceparent` (or starts a trace) and answers with ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for key, value in scope["headers"]:
            if key == b"traceparent":
                incoming = TraceParent.parse(value)
                break
        ours = incoming.child() if incoming is not None else TraceParent.new()
        header = (b"traceparent", str(ours).encode())

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        with traced(ours):
            await self.app(scope, receive, send_with_trace)
