"""The payment events on Kafka (topic `payment.events`, key = user_id, JSON by orjson).

    {"event_id", "event_type", "schema_version": 1, "occurred_at", "payment_id",
     "order_id", "user_id", "amount"}

Decoding errors say whether a redelivery could ever succeed: InvalidEvent never can (it is
dead-lettered at once); UnknownEventType is a newer producer's event, ignored on purpose.
"""

from dataclasses import dataclass
from typing import Any

import orjson

from shared.contract import MAX_AMOUNT, MIN_AMOUNT

PAYMENT_COMPLETED = "PaymentCompleted"
PAYMENT_CANCELLED = "PaymentCancelled"
EVENT_TYPES = frozenset({PAYMENT_COMPLETED, PAYMENT_CANCELLED})
SCHEMA_VERSION = 1


class InvalidEvent(Exception):
    """Bytes that are not a valid payment event; redelivering them cannot help."""

    retriable = False


class UnknownEventType(Exception):
    """A well-formed event of a type this consumer does not know: to be ignored."""

    retriable = False


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str
    event_type: str
    occurred_at: str
    payment_id: str
    order_id: str
    user_id: str
    amount: int
    schema_version: int = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(self)  # fields in order, as asdict() gave them, without its copies


_TEXT_FIELDS = ("event_id", "event_type", "occurred_at", "payment_id", "order_id", "user_id")


def decode(raw: bytes | None) -> PaymentEvent:
    """Parse and check an event; raises InvalidEvent or UnknownEventType."""
    try:
        data: Any = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidEvent("not a JSON object")
    missing = [name for name in (*_TEXT_FIELDS, "amount") if name not in data]
    if missing:
        raise InvalidEvent(f"missing fields: {', '.join(missing)}")
    for name in _TEXT_FIELDS:
        if not isinstance(data[name], str) or not data[name]:
            raise InvalidEvent(f"{name} must be a non-empty string")
    amount = data["amount"]
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int)
        or not MIN_AMOUNT <= amount <= MAX_AMOUNT
    ):
        raise InvalidEvent(
            f"amount must be an integer from {MIN_AMOUNT} to {MAX_AMOUNT}, not {amount!r}"
        )
    if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InvalidEvent(f"unsupported schema_version {data.get('schema_version')!r}")
    if data["event_type"] not in EVENT_TYPES:
        raise UnknownEventType(data["event_type"])
    return PaymentEvent(**{name: data[name] for name in (*_TEXT_FIELDS, "amount")})
