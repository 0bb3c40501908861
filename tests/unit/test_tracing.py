"""W3C traceparent handling and the log lines that carry it, without servers."""

import logging

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.payment.adapters.bank import GatewayBank
from shared import tracing
from shared.logs import JsonFormatter, TextFormatter
from shared.tracing import TraceMiddleware, TraceParent

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_parsed_and_printed_back():
    parsed = TraceParent.parse(VALID)
    assert parsed is not None and parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert str(parsed) == VALID


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ],
)
def test_a_missing_or_malformed_traceparent_is_ignored(header):
    assert TraceParent.parse(header) is None


def test_a_child_keeps_the_trace_and_takes_a_new_span():
    parent = TraceParent.new()
    child = parent.child()
    assert child.trace_id == parent.trace_id and child.parent_id != parent.parent_id


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()

    @app.get("/trace")
    async def trace() -> dict:
        current = tracing.current()
        return {"trace_id": current.trace_id if current else None}

    app.add_middleware(TraceMiddleware)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_request_continues_the_callers_trace_and_answers_with_it(client):
    answer = await client.get("/trace", headers={"traceparent": VALID})
    assert answer.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    answered = TraceParent.parse(answer.headers["traceparent"])
    assert answered is not None and answered.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert answered.parent_id != "00f067aa0ba902b7"


async def test_a_request_without_a_trace_gets_a_new_one(client):
    first, second = await client.get("/trace"), await client.get("/trace")
    assert first.json()["trace_id"] and first.json()["trace_id"] != second.json()["trace_id"]
    assert TraceParent.parse(first.headers["traceparent"]) is not None


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("payments", logging.INFO, __file__, 1, message, None, None)


def test_log_lines_carry_the_trace_id_and_bound_ids_only_inside_the_trace():
    trace = TraceParent.new()
    with tracing.traced(trace, event_id="e-1"):
        tracing.bind(order_id="o-1")
        line = orjson.loads(JsonFormatter().format(record("applied")))
        text = TextFormatter().format(record("applied"))
    assert line["msg"] == "applied" and line["trace_id"] == trace.trace_id
    assert line["event_id"] == "e-1" and line["order_id"] == "o-1"
    assert f"trace_id={trace.trace_id}" in text and "order_id=o-1" in text
    outside = orjson.loads(JsonFormatter().format(record("later")))
    assert "trace_id" not in outside and "order_id" not in outside


async def test_the_bank_gateway_is_called_in_the_payments_trace():
    seen: list[str | None] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(201, json={"status": "SUCCEEDED"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(gateway), base_url="http://gw")
    trace = TraceParent.new()
    with tracing.traced(trace):
        await GatewayBank(http).withdraw("t-1", "alice", 100)
    await GatewayBank(http).withdraw("t-2", "alice", 100)
    sent = TraceParent.parse(seen[0])
    assert sent is not None and sent.trace_id == trace.trace_id
    assert seen[1] is None
