"""Auth, body limit and error shapes of the shared HTTP edge, on a tiny app in memory."""

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from shared.auth import KeyRing
from shared.http import BodyLimitMiddleware, install_error_handlers


class Body(BaseModel):
    n: int


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=2)
    app.add_middleware(BodyLimitMiddleware, max_bytes=100)

    @app.post("/echo", dependencies=[Depends(KeyRing.of_bare_keys(["k1", "k2"]).require())])
    async def echo(body: Body) -> dict:
        return {"n": body.n}

    @app.get("/down")
    async def down() -> dict:
        raise ConnectionRefusedError("database")

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("key", ["k1", "k2"])
async def test_any_configured_key_is_accepted(client, key):
    answer = await client.post("/echo", json={"n": 1}, headers={"Authorization": f"Bearer {key}"})
    assert answer.json() == {"n": 1}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer k3", "Basic k1", "k1"])
async def test_missing_or_wrong_key_is_401(client, header):
    answer = await client.post("/echo", json={"n": 1}, headers={"Authorization": header})
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")


async def test_body_over_the_limit_is_413_even_without_content_length(client):
    async def chunks():
        for _ in range(5):
            yield b"x" * 50

    answer = await client.post("/echo", content=chunks(), headers={"Authorization": "Bearer k1"})
    assert (answer.status_code, answer.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_dependency_error_is_503_with_retry_after(client):
    answer = await client.get("/down")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["code"] == "DEPENDENCY_UNAVAILABLE"
