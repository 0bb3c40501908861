"""POST /payments served without FastAPI's per-request work.

FastAPI spends about 165 µs of CPU on a request to a route with a body model and three
dependencies (matching through its included routers, solving the dependencies, parsing the
body through `email.message` and `json`, validating the dict); a plain Starlette route in
the same app, through the same middleware and exception handlers, about 30 µs
(micro-benchmark under uvloop). POST /payments is the one route that runs hundreds of times
a second, so it is registered ahead of FastAPI's routes (PAYMENT_LEAN_ROUTE, on by default),
is served through a lane past the framework's own middleware (shared/fast_lane.py), and
does by hand what FastAPI did: the API key check, the body's parsing and validation
(shared.http.parse_json_body: the same 422s), the components from the app's state. Then it
runs the same code as FastAPI's route (routes.pay_order), which stays mounted behind it:
it documents the operation in the OpenAPI schema and serves it when PAYMENT_LEAN_ROUTE=false.
tests/integration/test_payments_api.py runs its bad inputs against both.
"""

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from services.payment.entrypoints.deps import idempotency_store, payment_metrics, payment_service
from services.payment.entrypoints.routes import pay_order
from services.payment.entrypoints.schemas import PaymentRequest
from shared.http import parse_json_body


def payment_route(require_key: Callable[[Request], Awaitable[None]]) -> Route:
    """The lean POST /payments; `require_key` admits a key with the pay scope."""

    async def create_payment(request: Request) -> Response:
        await require_key(request)
        body = parse_json_body(
            PaymentRequest, await request.body(), request.headers.get("content-type")
        )
        return await pay_order(
            body,
            await payment_service(request),
            await idempotency_store(request),
            await payment_metrics(request),
        )

    return _NamedRoute("/payments", create_payment, methods=["POST"], name="create_payment_lean")


class _NamedRoute(Route):
    """Puts itself in the scope as FastAPI's routes do: the metrics read its template there
    instead of matching every route again."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope
