"""Prometheus metrics every service shares: the HTTP server histogram, `/metrics`, refreshers.

Names follow Micrometer's Prometheus naming (CONTRACT.md, Metrics), so dashboards and alerts
written for Spring services work unchanged. Each app gets a registry of its own, with the
process collectors in it: no global state, so two apps in one test process do not collide,
and every replica or worker exposes only what it saw.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.background import BackgroundLoop
from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

# Seconds; Micrometer's SLO-style buckets cut to what a payment API spans.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_URI = "UNKNOWN"


def new_registry() -> CollectorRegistry:
    """A registry with prometheus-client's process, platform and GC collectors."""
    disable_created_metrics()  # Micrometer has no `_created` series; they only add weight
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    for collector in (PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def outcome(status: int) -> str:
    """Micrometer's `outcome` tag for an HTTP status."""
    if status < 200:
        return "INFORMATIONAL"
    if status < 300:
        return "SUCCESS"
    if status < 400:
        return "REDIRECTION"
    if status < 500:
        return "CLIENT_ERROR"
    return "SERVER_ERROR"


class HttpMetricsMiddleware:
    """Times every HTTP request at the ASGI edge into `http_server_requests_seconds`.

    Outermost of the app's own middleware, so answers given before routing (401, 413, the
    gateway's open-circuit 503) are counted too. `uri` is the matched route's template; a
    request answered before routing is matched against the routes here, and a path no route
    knows is `UNKNOWN`, so raw ids never become label values.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute], histogram: Histogram) -> None:
        self.app = app
        self.routes = routes
        self.histogram = histogram
        # labels() hashes and validates on every call; a dict lookup is a fraction of that.
        self._children: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self._child(scope, status).observe(time.perf_counter() - started)

    def _child(self, scope: Scope, status: int) -> Histogram:
        route = scope.get("route")
        uri = route.path if route is not None else self._template(scope)
        key = (scope["method"], uri, status)
        child = self._children.get(key)
        if child is None:
            child = self.histogram.labels(scope["method"], uri, str(status), outcome(status))
            self._children[key] = child
        return child

    def _template(self, scope: Scope, routes: list[BaseRoute] | None = None) -> str:
        """The template of the route that would have served a request answered earlier."""
        for route in self.routes if routes is None else routes:
            match, _ = route.matches(scope)
            if match is Match.NONE:
                continue
            # FastAPI keeps an included router's routes behind one matcher; look inside it.
            included = getattr(getattr(route, "original_router", None), "routes", None)
            if included is not None:
                return self._template(scope, included)
            return getattr(route, "path", UNKNOWN_URI)
        return UNKNOWN_URI


def install_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Serve `registry` on GET /metrics (no auth) and time every request into it."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    histogram = Histogram(
        "http_server_requests_seconds",
        "HTTP server requests, by method, route template, status and outcome",
        ("method", "uri", "status", "outcome"),
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    app.add_middleware(HttpMetricsMiddleware, routes=app.router.routes, histogram=histogram)


class Refresher(BackgroundLoop):
    """Calls `refresh` every `interval` seconds in a background task, for gauges whose
    source is a query (outbox backlog, consumer lag) rather than an event in this process.

    A failed refresh is logged and leaves the gauges as they were: a scrape still answers.
    """

    def __init__(
        self,
        name: str,
        refresh: Callable[[], Awaitable[None]],
        interval: float,
    ) -> None:
        super().__init__()
        self.name = name
        self.task_name = f"metrics:{name}"
        self.refresh = refresh
        self.interval = interval

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await asyncio.wait_for(self.refresh(), timeout=max(self.interval, 1.0))
            except (TimeoutError, KafkaError, *DEPENDENCY_ERRORS) as exc:
                log.warning("metrics %s not refreshed: %r", self.name, exc)
            await self.pause(self.interval)
