"""The payment service's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from services.payment.bootstrap import bootstrap
from services.payment.entrypoints import errors
from services.payment.entrypoints.hot_path import payment_route
from services.payment.entrypoints.routes import payments, reads, refunds
from services.payment.metrics import PaymentMetrics
from services.payment.settings import PaymentSettings
from shared import db
from shared.auth import Scope
from shared.fast_lane import FastLaneApp
from shared.health import health_router
from shared.http import FASTAPI_TELEMETRY, BodyLimitMiddleware, install_error_handlers
from shared.kafka_lag import ConsumerLagGauges, LagTarget
from shared.metrics import Refresher, install_metrics, new_registry
from shared.tracing import TraceMiddleware


def create_app(settings: PaymentSettings) -> FastLaneApp:
    registry = new_registry()
    metrics = PaymentMetrics(registry)
    lag = ConsumerLagGauges(
        LagTarget(
            settings.kafka_bootstrap_servers, settings.points_group_id, settings.events_topic
        ),
        registry,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap(settings, metrics=metrics) as components, AsyncExitStack() as stack:
            app.state.components = components
            app.state.health_checks = {
                "mariadb": lambda: db.ping(components.pool),
                "redis": components.redis.ping,
            }
            metrics.watch_relay(components.relay)
            interval = settings.metrics_refresh_seconds
            stack.push_async_callback(lag.close)
            for refresher in (
                Refresher("backlog", partial(metrics.refresh_backlog, components.pool), interval),
                Refresher("lag", lag.refresh, interval),
            ):
                refresher.start()
                stack.push_async_callback(refresher.stop)
            yield

    app = FastLaneApp(
        title="Mock-Pay payment service",
        description="Wallets and payments: idempotent by order_id, serialised per wallet.",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY,
    )
    install_error_handlers(app, settings.retry_after_seconds)
    errors.install(app, settings.retry_after_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.payment_max_body_bytes)
    app.include_router(health_router(settings.health_check_timeout_seconds))
    keys = settings.key_ring()
    for router, scope in ((reads, Scope.READ), (payments, Scope.PAY), (refunds, Scope.REFUND)):
        app.include_router(router, dependencies=[Depends(keys.require(scope))])
    if settings.payment_lean_route:
        lean = payment_route(keys.require(Scope.PAY))
        app.router.routes.insert(0, lean)  # ahead of FastAPI's route, for the full stack
        app.add_lane(lean)
    app.state.metrics = metrics
    app.add_middleware(TraceMiddleware)
    install_metrics(app, registry)
    return app
