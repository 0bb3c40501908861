"""The benchmarks' own tools: the lean HTTP client, CPU sampling, and the verdicts."""

import os

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bench.cpu import CpuSample, machine_ticks, process_ticks
from bench.events import verdicts
from bench.lean_http import LeanClient
from tests.servers import serving


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


def test_cpu_sample_sees_this_process_working() -> None:
    sample = CpuSample.begin({"me": os.getpid(), "gone": 2**22 + 1})
    started = sample.started["me"]
    assert started is not None

    def counted() -> bool:  # the kernel has counted ticks for us and for the machine
        me = process_ticks(os.getpid())
        return me is not None and me > started and machine_ticks()[1] > sample.machine[1]

    while not counted():
        sum(range(10_000))
    shares = sample.end()
    assert shares["me"] > 0
    assert "gone" not in shares
    assert 0 <= shares["machine busy %"] <= 100


def row(asked: float, served: float, p99: float) -> dict:
    return {"target rate/s": asked, "achieved rate/s": served, "commit→points p99 ms": p99}


def test_verdicts_need_both_the_rate_and_the_latency() -> None:
    lines = verdicts(
        [row(500, 499, 120.0), row(500, 400, 120.0), row(500, 500, 300.0)],
        [{"events/s": 4000.0}],
    )
    assert "(the rate was not served)" in lines[1]
    assert [line.endswith(" met") and "NOT" not in line for line in lines] == [
        True,
        False,
        False,
        False,
    ]
