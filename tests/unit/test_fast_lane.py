"""A lane answers exactly as the app's full stack would: the same middleware around it, the
same exception handlers, the same 500 handler. A request that cannot take the lane goes
through the full stack."""

import httpx
import pytest
from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.payment.entrypoints.app import create_app
from services.payment.settings import PaymentSettings
from shared.fast_lane import FastLaneApp
from shared.http import FASTAPI_TELEMETRY


class Refused(Exception):
    pass


class Stamp:
    """An app middleware: counts the requests it sees and marks their answers."""

    seen: list[str] = []

    def __init__(self, app: ASGIApp, mark: str) -> None:
        self.app = app
        self.mark = mark

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        Stamp.seen.append(scope["path"])

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stamp", self.mark.encode())]
            await send(message)

        await self.app(scope, receive, marked)


async def hot(request: Request) -> Response:
    body = await request.json()
    if body["do"] == "refuse":
        raise Refused("no")
    if body["do"] == "missing":
        raise HTTPException(404, "not here")
    if body["do"] == "crash":
        raise RuntimeError("boom")
    return JSONResponse({"via": "endpoint"}, status_code=201)


async def routed_only(request: Request) -> Response:
    return JSONResponse({"via": "router"}, status_code=200)


def build(with_lane: bool, lane_endpoint=hot) -> FastLaneApp:
    app = FastLaneApp(telemetry=FASTAPI_TELEMETRY)

    async def on_refused(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "REFUSED"}, status_code=418)

    async def on_crash(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "INTERNAL"}, status_code=500)

    app.add_exception_handler(Refused, on_refused)
    app.add_exception_handler(500, on_crash)
    app.add_middleware(Stamp, mark="outer")
    route = Route("/hot", hot, methods=["POST"])
    app.router.routes.insert(0, route)
    if with_lane:
        app.add_lane(Route("/hot", lane_endpoint, methods=["POST"]))
    app.router.add_route("/hot", routed_only, methods=["GET"])
    return app


async def ask(
    app: FastLaneApp, method: str, do: str = "pay", root_path: str = ""
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, f"{root_path}/hot", json={"do": do})


@pytest.mark.parametrize("do", ["pay", "refuse", "missing", "crash"])
async def test_a_lane_answers_as_the_full_stack_does(do: str) -> None:
    through_lane = await ask(build(with_lane=True), "POST", do)
    through_router = await ask(build(with_lane=False), "POST", do)
    assert through_lane.status_code == through_router.status_code
    assert through_lane.json() == through_router.json()
    assert dict(through_lane.headers) == dict(through_router.headers)
    if do != "crash":  # a crash is answered outside the app's middleware, in both stacks
        assert through_lane.headers["x-stamp"] == "outer"


async def test_the_app_middleware_sees_lane_requests() -> None:
    Stamp.seen.clear()
    await ask(build(with_lane=True), "POST")
    assert Stamp.seen == ["/hot"]


async def test_a_lane_endpoint_sees_the_route_it_serves() -> None:
    """As FastAPI's routes do: the metrics read the route's template there."""
    seen = []

    async def noting(request: Request) -> Response:
        seen.append(request.scope["route"].path)
        return Response(status_code=204)

    await ask(build(with_lane=True, lane_endpoint=noting), "POST")
    assert seen == ["/hot"]


async def test_the_lane_serves_its_route_and_nothing_else() -> None:
    async def lane_only(request: Request) -> Response:
        return JSONResponse({"via": "lane"}, status_code=201)

    app = build(with_lane=True, lane_endpoint=lane_only)
    assert (await ask(app, "POST")).json() == {"via": "lane"}
    assert (await ask(app, "GET")).json() == {"via": "router"}  # another method
    # Under a root_path the path no longer names the route as it stands: the router decides.
    assert (await ask(app, "POST", root_path="/api")).json()["via"] == "endpoint"


def test_a_lane_needs_a_fixed_path_an_async_endpoint_and_no_fastapi_body_limit() -> None:
    app = FastLaneApp()
    with pytest.raises(ValueError, match="fixed path"):
        app.add_lane(Route("/hot/{id}", hot, methods=["POST"]))

    def blocking(request: Request) -> Response:
        return Response()

    with pytest.raises(ValueError, match="async endpoint"):
        app.add_lane(Route("/hot", blocking, methods=["POST"]))
    with pytest.raises(ValueError, match="max_body_size"):
        FastLaneApp(max_body_size=1024).add_lane(Route("/hot", hot, methods=["POST"]))


def test_the_payment_service_serves_post_payments_through_a_lane() -> None:
    assert set(create_app(PaymentSettings()).lanes) == {("POST", "/payments")}
    assert not create_app(PaymentSettings(payment_lean_route=False)).lanes
