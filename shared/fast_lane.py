"""A route served past the framework's own per-request layers: `FastLaneApp`.

Every request to a FastAPI app passes, in order: Starlette's ServerErrorMiddleware, FastAPI's
telemetry and body-limit middleware, the app's own middleware, Starlette's
ExceptionMiddleware, FastAPI's AsyncExitStackMiddleware, the router (which tries each route's
pattern in turn) and the route's request_response wrapper (a second exception-handling
layer around the endpoint). For POST /payments, the one route that runs hundreds of times a
second, the layers that are not the app's own cost about 5 µs of a 20 µs 401 answer, and
more in the payment service's CPU per payment at a steady rate (README, "Seventh round").

A route added with `add_lane(route)` gets a stack of its own, built from the same parts:
the same ServerErrorMiddleware (the app's 500 handler), the app's own middleware (the same
classes with the same arguments, in the same order), the same ExceptionMiddleware (the
app's exception handlers), then the route's endpoint. What it leaves out does nothing for
such a route:

- FastAPI's telemetry: the services switch it off (shared.http.FASTAPI_TELEMETRY);
- FastAPI's body limit: none may be set (add_lane refuses); the app's BodyLimitMiddleware stays;
- the exit stack: for uploaded files and FastAPI dependencies, which a lane endpoint has not;
- the router's search.

A request takes the lane when its method and path (which, in ASGI, includes a root_path) are
the route's exactly; any other request goes through the app's full stack, where the route is
mounted too.
"""

from typing import Any

from fastapi import FastAPI
from starlette._utils import is_async_callable
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send


class FastLaneApp(FastAPI):
    """A FastAPI app in which chosen routes skip the framework's per-request layers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lanes: dict[tuple[str, str], Route] = {}

    def add_lane(self, route: Route) -> None:
        """Serve `route`'s methods on its path through a stack of its own. Mount the route
        on the app as well: requests that cannot take the lane still reach it."""
        if route.param_convertors or route.methods is None:
            raise ValueError(f"a lane needs a fixed path and its methods: {route.path!r}")
        if not is_async_callable(route.endpoint):
            raise ValueError(f"a lane needs an async endpoint: {route.path!r}")
        if self.max_body_size is not None:  # FastAPI's limit is one of the layers left out
            raise ValueError("a lane leaves FastAPI's max_body_size out; use BodyLimitMiddleware")
        for method in route.methods:
            self.lanes[(method, route.path)] = route
        self.middleware_stack = None  # built again on the next request, with the lane

    def build_middleware_stack(self) -> ASGIApp:
        full = super().build_middleware_stack()
        if not self.lanes:
            return full
        return _Lanes(full, {key: self._lane_stack(route) for key, route in self.lanes.items()})

    def _lane_stack(self, route: Route) -> ASGIApp:
        """What build_middleware_stack builds, with only the parts a lane route needs."""
        error_handler = None
        handlers = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                handlers[key] = value
        endpoint = _endpoint(route, self.router)
        app: ASGIApp = ExceptionMiddleware(endpoint, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(app, handler=error_handler, debug=self.debug)


class _Lanes:
    def __init__(self, full: ASGIApp, lanes: dict[tuple[str, str], ASGIApp]) -> None:
        self.full = full
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            lane = self.lanes.get((scope["method"], scope["path"]))
            if lane is not None:
                await lane(scope, receive, send)
                return
        await self.full(scope, receive, send)


def _endpoint(route: Route, router: Router) -> ASGIApp:
    """The route's endpoint as the router and request_response would call it."""
    endpoint = route.endpoint

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("router", router)
        scope["route"] = route
        scope["endpoint"] = endpoint
        scope["path_params"] = {}
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
