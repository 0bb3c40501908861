"""The HTTP server histogram, the breaker's metrics and the lock's, on in-memory apps."""

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import CollectorRegistry, generate_latest

from services.bank_gateway.metrics import register_breaker
from services.payment.metrics import PaymentMetrics
from services.payment.service_layer.locking import NotHeld
from shared.auth import KeyRing
from shared.breaker import BreakerConfig, CallNotPermitted, CircuitBreaker
from shared.http import BodyLimitMiddleware, install_error_handlers
from shared.lock import LockLostError, LockTimeout
from shared.metrics import install_metrics
from tests.scrape import named, parse, value

HTTP = "http_server_requests_seconds_count"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(registry: CollectorRegistry) -> httpx.AsyncClient:
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=1)
    app.add_middleware(BodyLimitMiddleware, max_bytes=100)

    router = APIRouter()

    @router.post("/items/{item_id}")
    async def post_item(item_id: str) -> dict:
        return {"id": item_id}

    app.include_router(router, dependencies=[Depends(KeyRing.of_bare_keys(["k"]).require())])

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("a bug")

    install_metrics(app, registry)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def scraped(registry: CollectorRegistry):
    return parse(generate_latest(registry).decode())


async def test_a_request_is_labelled_by_its_route_template_not_its_path(client, registry):
    await client.post("/items/a-1", headers={"Authorization": "Bearer k"})
    await client.post("/items/b-2", headers={"Authorization": "Bearer k"})
    labels = {"method": "POST", "uri": "/items/{item_id}", "status": "200", "outcome": "SUCCESS"}
    assert value(scraped(registry), HTTP, **labels) == 2


async def test_answers_given_before_the_handler_are_counted_under_the_template(client, registry):
    await client.post("/items/x", headers={"Authorization": "Bearer wrong"})
    await client.post("/items/x", content=b"x" * 500, headers={"Authorization": "Bearer k"})
    samples = scraped(registry)
    assert value(samples, HTTP, uri="/items/{item_id}", status="401", outcome="CLIENT_ERROR") == 1
    assert value(samples, HTTP, uri="/items/{item_id}", status="413", outcome="CLIENT_ERROR") == 1


async def test_a_handler_that_raises_counts_as_a_server_error(client, registry):
    assert (await client.get("/boom")).status_code == 500
    assert value(scraped(registry), HTTP, uri="/boom", status="500", outcome="SERVER_ERROR") == 1


async def test_a_thousand_unknown_paths_and_ids_keep_the_uri_label_bounded(client, registry):
    for i in range(500):
        await client.get(f"/nowhere/{i}")
        await client.post(f"/items/id-{i}")
    uris = {s.labels["uri"] for s in named(scraped(registry), HTTP)}
    assert uris == {"UNKNOWN", "/items/{item_id}"}


def test_breaker_metrics_are_read_from_the_breakers_own_state(registry):
    breaker = CircuitBreaker("bank", BreakerConfig(window_size=2, minimum_calls=2))
    register_breaker(breaker, registry)
    samples = scraped(registry)
    assert value(samples, "resilience4j_circuitbreaker_state", state="closed") == 1
    assert value(samples, "resilience4j_circuitbreaker_failure_rate", name="bank") == -1
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(0.02)
    with pytest.raises(CallNotPermitted):
        breaker.acquire()
    samples = scraped(registry)
    assert value(samples, "resilience4j_circuitbreaker_state", state="open") == 1
    assert value(samples, "resilience4j_circuitbreaker_state", state="closed") == 0
    assert value(samples, "resilience4j_circuitbreaker_failure_rate", name="bank") == 100
    assert value(samples, "resilience4j_circuitbreaker_buffered_calls", kind="failed") == 2
    assert value(samples, "resilience4j_circuitbreaker_not_permitted_calls_total") == 1
    assert value(samples, "resilience4j_circuitbreaker_calls_seconds_count", kind="failed") == 2


class FakeLocking:
    row_locks = False

    def __init__(self, fail: BaseException | None = None) -> None:
        self.fail = fail

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[NotHeld]:
        if self.fail is not None:
            raise self.fail
        yield NotHeld()


async def test_lock_waits_holds_timeouts_and_lost_leases_are_counted(registry):
    metrics = PaymentMetrics(registry)
    async with metrics.metered(FakeLocking(), "redis").hold("wallet:a"):
        pass
    with pytest.raises(LockTimeout):
        async with metrics.metered(FakeLocking(LockTimeout("busy")), "redis").hold("wallet:a"):
            pass
    with pytest.raises(LockLostError):
        async with metrics.metered(FakeLocking(), "redis").hold("wallet:a"):
            raise LockLostError("lost")
    samples = scraped(registry)
    assert value(samples, "mockpay_lock_wait_seconds_count", strategy="redis") == 2
    assert value(samples, "mockpay_lock_held_seconds_count", strategy="redis") == 2
    assert value(samples, "mockpay_lock_timeouts_total") == 1
    assert value(samples, "mockpay_lock_lease_lost_total") == 1


@pytest.mark.parametrize(
    ("status", "replayed", "outcome"),
    [
        (201, False, "completed"),
        (201, True, "replayed"),
        (402, True, "replayed"),
        (402, False, "insufficient_balance"),
        (409, False, "in_progress"),
        (422, False, "key_reused"),
        (503, False, "unavailable"),
    ],
)
def test_a_payment_answer_counts_under_its_outcome(registry, status, replayed, outcome):
    metrics = PaymentMetrics(registry)
    metrics.payment_answered(status, replayed, amount=700)
    samples = scraped(registry)
    assert value(samples, "mockpay_payments_total", outcome=outcome) == 1
    paid = 700 if outcome == "completed" else 0
    assert value(samples, "mockpay_payments_amount_total") == paid
