"""The payment service's FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from services.payment.bootstrap import bootstrap
from services.payment.entrypoints import errors
from services.payment.entrypoints.routes import api, public
from services.payment.settings import PaymentSettings
from shared.http import BodyLimitMiddleware, bearer_checker, install_error_handlers


def create_app(settings: PaymentSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with bootstrap(settings) as components:
            app.state.components = components
            yield

    app = FastAPI(
        title="Mock-Pay payment service",
        description="Wallets and payments: idempotent by order_id, serialised per wallet.",
        lifespan=lifespan,
    )
    install_error_handlers(app, settings.retry_after_seconds)
    errors.install(app, settings.retry_after_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.payment_max_body_bytes)
    app.include_router(public)
    app.include_router(api, dependencies=[Depends(bearer_checker(settings.api_keys()))])
    return app
