"""HTTP edge shared by the FastAPI services: the error body, the body-size limit, the
JSON body parsing of a route served without FastAPI's per-request work, and FastAPI's own
telemetry switched off.

Every error leaves as JSON `{"code": "UPPER_SNAKE", "message": "..."}` (validation errors add
`errors`). Dependency trouble leaves as 503 DEPENDENCY_UNAVAILABLE with Retry-After.
"""

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# FastAPI(telemetry=...) for every service. FastAPI's own OpenTelemetry instrumentation asks
# on every request whether a provider is configured, through environment lookups: 15 of the
# 40 µs a 401 took through the payment service's stack (micro-benchmark under uvloop).
# Nothing here configures OpenTelemetry: the services trace with `traceparent`
# (shared/tracing.py) and count in Prometheus (shared/metrics.py).
FASTAPI_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False}


class JsonResponse(Response):
    """A JSON response serialised with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    """An error the client sees: status, code and message, optional headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> JsonResponse:
    return JsonResponse(
        {"code": code, "message": message, **extra}, status_code=status, headers=headers
    )


def parse_json_body(model: type[M], body: bytes, content_type: str | None) -> M:
    """A request body as `model`, refused as FastAPI refuses it: a RequestValidationError
    (422 VALIDATION_ERROR) for an empty body, a content type other than JSON (a missing one
    too, as FastAPI's strict content type has it), malformed JSON or invalid fields, each
    error's location starting with "body"."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required"}]
        )
    if not _is_json(content_type):
        raise RequestValidationError([{
            "type": "model_attributes_type", "loc": ("body",),
            "msg": "Input should be a valid dictionary or object to extract fields from",
        }])  # fmt: skip
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def _is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters (charset) ignored."""
    if not content_type:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


_STATUS_CODES = {
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    """Map ApiError, validation errors, unknown routes and dependency errors to JSON bodies."""

    async def on_api_error(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return error_response(422, "VALIDATION_ERROR", "request is not valid", errors=errors)

    async def on_http(_: Request, exc: Exception) -> JsonResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    async def on_dependency(request: Request, exc: Exception) -> JsonResponse:
        log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
        return error_response(
            503,
            "DEPENDENCY_UNAVAILABLE",
            "a backing service is unavailable; nothing was changed, retry later",
            {"Retry-After": str(retry_after_seconds)},
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for exc_class in DEPENDENCY_ERRORS:
        app.add_exception_handler(exc_class, on_dependency)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "PAYLOAD_TOO_LARGE", f"request body is over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


class _BodyTooLarge(StarletteHTTPException):
    """An HTTPException, so that FastAPI's body parsing lets it through as a 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is over {max_bytes} bytes")
