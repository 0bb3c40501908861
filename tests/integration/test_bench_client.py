"""The benchmarks' lean HTTP client against a real server on a loopback socket."""

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bench.lean_http import LeanClient
from testkit.servers import serving

pytestmark = pytest.mark.integration


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/payments")
    async def pay(body: dict) -> JSONResponse:
        if body.get("amount", 0) <= 0:
            return JSONResponse({"code": "VALIDATION_FAILED"}, status_code=422)
        return JSONResponse({"echo": body, "padding": "x" * 5000}, status_code=201)

    return app


async def test_lean_client_reads_statuses_and_reuses_its_connections() -> None:
    async with serving(echo_app()) as url:
        port = int(url.rsplit(":", 1)[1])
        client = LeanClient("127.0.0.1", port, {"Authorization": "Bearer k"}, connections=4)
        try:
            statuses = [await client.post("/payments", {"amount": n - 2}) for n in range(6)]
        finally:
            await client.close()
    assert statuses == [422, 422, 422, 201, 201, 201]
    assert client.opened == 1  # one request at a time: one keep-alive connection
    assert client.connects == 1


async def test_a_connection_idle_past_the_servers_keep_alive_is_not_reused() -> None:
    now = [0.0]
    async with serving(echo_app()) as url:
        port = int(url.rsplit(":", 1)[1])
        client = LeanClient(
            "127.0.0.1", port, {}, connections=4, idle_seconds=4.0, clock=lambda: now[0]
        )
        try:
            first = await client.post("/payments", {"amount": 1})
            now[0] += 3.9  # still young: reused
            second = await client.post("/payments", {"amount": 1})
            now[0] += 4.1  # uvicorn closes keep-alive connections idle for 5 s
            third = await client.post("/payments", {"amount": 1})
        finally:
            await client.close()
    assert (first, second, third) == (201, 201, 201)
    assert client.connects == 2 and client.opened == 1
