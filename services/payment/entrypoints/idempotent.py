"""Runs a request once per idempotency key and replays its stored answer after that.

201 and 402 answers are stored; anything else (202, 404, 422, 502, 503, ...) releases the
key so the client may retry. If Redis fails after the money moved, the answer still goes out: the
database's unique key replays it on a retry. If Redis cannot be reached at all, the request
runs without a record (LOCK_FALLBACK=database): the database's unique keys (order_id,
charge_id), checked under the wallet's lock, replay a repeat instead of running it twice.
"""

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.payment.domain.errors import ChargeDeclined, InsufficientBalance
from services.payment.entrypoints.errors import status_and_body
from shared.http import ApiError, JsonResponse
from shared.idempotency import IdempotencyStore, InProgress, Mismatch, Replay, Started
from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

STORED_ERRORS = (InsufficientBalance, ChargeDeclined)
STORED_STATUSES = (201, 402)
REPLAYED = {"Idempotent-Replayed": "true"}

Action = Callable[[], Awaitable[tuple[int, dict[str, Any], bool]]]


@dataclass(frozen=True)
class Idempotency:
    store: IdempotencyStore
    database_fallback: bool  # Redis unreachable: run, and let the database's keys decide


async def run_once(
    idempotency: Idempotency, key: str, fingerprint: str, action: Action
) -> JsonResponse:
    """`action` returns (status, body, replayed_from_database)."""
    store = idempotency.store
    try:
        decision = await store.begin(key, fingerprint)
    except DEPENDENCY_ERRORS as exc:
        if not idempotency.database_fallback:
            raise
        log.warning("no idempotency record for %r (%r); the database's keys decide", key, exc)
        return await _unrecorded(action)
    if isinstance(decision, Replay):
        return JsonResponse(decision.body, status_code=decision.status, headers=REPLAYED)
    if isinstance(decision, InProgress):
        raise ApiError(409, "REQUEST_IN_PROGRESS", f"{key!r} is still being processed")
    if isinstance(decision, Mismatch):
        raise ApiError(422, "IDEMPOTENCY_KEY_REUSED", f"{key!r} was already used with another body")
    assert isinstance(decision, Started)
    try:
        async with store.leased(decision):
            status, body, replayed = await action()
    except STORED_ERRORS as exc:
        status, body = status_and_body(exc)
        replayed = False
    except BaseException:
        with contextlib.suppress(*DEPENDENCY_ERRORS):
            await store.release(decision)
        raise
    try:
        if status in STORED_STATUSES:
            await store.complete(decision, status, body)
        else:
            await store.release(decision)
    except DEPENDENCY_ERRORS as exc:
        log.warning("idempotency record for %r not stored (%r); the database backs it", key, exc)
    return JsonResponse(body, status_code=status, headers=REPLAYED if replayed else None)


async def _unrecorded(action: Action) -> JsonResponse:
    try:
        status, body, replayed = await action()
    except STORED_ERRORS as exc:
        status, body = status_and_body(exc)
        replayed = False
    return JsonResponse(body, status_code=status, headers=REPLAYED if replayed else None)
