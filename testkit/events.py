"""Payment events as the payment service writes them, for tests and benches that fill an outbox."""

import uuid
from datetime import datetime

from shared.clock import iso
from shared.events import PAYMENT_COMPLETED, PaymentEvent


def completed_event(now: datetime, order_prefix: str, user_id: str) -> PaymentEvent:
    """A PaymentCompleted of 1,000 with fresh ids, occurred at `now`."""
    return PaymentEvent(
        event_id=str(uuid.uuid4()),
        event_type=PAYMENT_COMPLETED,
        occurred_at=iso(now),
        payment_id=str(uuid.uuid4()),
        order_id=f"{order_prefix}-{uuid.uuid4().hex}",
        user_id=user_id,
        amount=1000,
    )
