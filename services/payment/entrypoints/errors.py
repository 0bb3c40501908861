"""Domain and lock errors as HTTP answers (see ../shared/CONTRACT.md)."""

import math

from fastapi import FastAPI, Request

from services.payment.domain import errors
from shared.http import ApiError, JsonResponse, error_response
from shared.infra_errors import DEPENDENCY_ERRORS
from shared.lock import LockLostError, LockTimeout

STATUS_AND_CODE: dict[type[Exception], tuple[int, str]] = {
    errors.WalletNotFound: (404, "WALLET_NOT_FOUND"),
    errors.PaymentNotFound: (404, "PAYMENT_NOT_FOUND"),
    errors.WalletExists: (409, "WALLET_EXISTS"),
    errors.InsufficientBalance: (402, "INSUFFICIENT_BALANCE"),
    errors.IdempotencyKeyReused: (422, "IDEMPOTENCY_KEY_REUSED"),
    errors.ConcurrentUpdate: (503, "LOCK_TIMEOUT"),
    errors.ChargeDeclined: (402, "BANK_DECLINED"),
    errors.BankUnavailable: (503, "BANK_UNAVAILABLE"),
    errors.BankError: (502, "BANK_ERROR"),
    LockTimeout: (503, "LOCK_TIMEOUT"),
    LockLostError: (503, "LOCK_TIMEOUT"),
}


def status_and_code(exc_class: type[BaseException]) -> tuple[int, str]:
    """The answer for the nearest class in `exc_class`'s MRO that has one; a subclass of a
    mapped error answers as its parent does."""
    for cls in exc_class.__mro__:
        if cls in STATUS_AND_CODE:
            return STATUS_AND_CODE[cls]
    raise LookupError(f"no HTTP answer for {exc_class.__qualname__}")


def status_and_body(exc: Exception) -> tuple[int, dict[str, str]]:
    status, code = status_and_code(type(exc))
    return status, {"code": code, "message": str(exc)}


def status_of(exc: Exception) -> int:
    """The status the error handlers give `exc`."""
    if isinstance(exc, ApiError):
        return exc.status
    if type(exc) in STATUS_AND_CODE:
        return STATUS_AND_CODE[type(exc)][0]
    return 503 if isinstance(exc, DEPENDENCY_ERRORS) else 500


def install(app: FastAPI, retry_after_seconds: int) -> None:
    async def on_error(_: Request, exc: Exception) -> JsonResponse:
        status, body = status_and_body(exc)
        retry_after = math.ceil(getattr(exc, "retry_after", retry_after_seconds))
        headers = {"Retry-After": str(max(1, retry_after))} if status == 503 else None
        return error_response(status, body["code"], body["message"], headers)

    for exc_class in STATUS_AND_CODE:
        app.add_exception_handler(exc_class, on_error)
