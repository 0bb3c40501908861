"""Liveness and readiness, one implementation for every service.

    GET /health/live  200 while the process runs and its event loop answers.
    GET /health       readiness: 200 when every check passes, 503 otherwise, with each
                      check's state and, for one that fails, why:

        {"status": "unavailable",
         "dependencies": {"mariadb": "up", "redis": "down"},
         "reasons": {"redis": "ConnectionError: Error 111 connecting to 127.0.0.1:6390."}}

A check is an async callable that returns when its dependency is ready and raises when it
is not: NotReady with a reason of its own, or the dependency's own error (an outage, as
shared.infra_errors.is_outage says; any other error is a bug and answers 500).
Each runs under a timeout; one that does not answer in time is down with "no answer in Ns".
A service puts its checks in `app.state.health_checks` in its lifespan.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request

from shared.http import JsonResponse
from shared.infra_errors import is_outage

__all__ = ["Check", "NotReady", "health_router", "readiness"]

Check = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """A check's own reason for "not ready" (e.g. the consumer has not joined its group)."""


async def _run(check: Check, timeout: float) -> str | None:
    """None when the check passed, else the reason it did not."""
    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        return f"no answer in {timeout:g}s"
    except Exception as exc:
        if isinstance(exc, NotReady) or is_outage(exc):
            return f"{type(exc).__name__}: {exc}"
        raise
    return None


async def readiness(checks: Mapping[str, Check], timeout: float) -> tuple[int, dict[str, object]]:
    """Run every check at once; (status, body) as /health answers."""
    reasons = await asyncio.gather(*(_run(check, timeout) for check in checks.values()))
    failed = {name: reason for name, reason in zip(checks, reasons, strict=True) if reason}
    body: dict[str, object] = {
        "status": "unavailable" if failed else "ok",
        "dependencies": {name: "down" if name in failed else "up" for name in checks},
    }
    if failed:
        body["reasons"] = failed
    return (503 if failed else 200), body


def health_router(timeout: float) -> APIRouter:
    """/health/live and /health; the checks come from `app.state.health_checks`."""
    router = APIRouter(tags=["health"])

    @router.get("/health/live")
    async def live() -> JsonResponse:
        """200 while the process runs (liveness)."""
        return JsonResponse({"status": "ok"})

    @router.get("/health")
    async def ready(request: Request) -> JsonResponse:
        """200 when every dependency answers; 503 naming what is down and why (readiness)."""
        status, body = await readiness(request.app.state.health_checks, timeout)
        return JsonResponse(body, status_code=status)

    return router
