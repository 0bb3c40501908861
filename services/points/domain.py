"""The points rule. Plain Python: no I/O."""

from decimal import ROUND_FLOOR, Decimal

from shared.events import PAYMENT_COMPLETED, PaymentEvent

EARN = "EARN"
REVERT = "REVERT"


def points_for(amount: int, rate: Decimal) -> int:
    """floor(amount * rate), exactly (no float rounding)."""
    return int((Decimal(amount) * rate).to_integral_value(rounding=ROUND_FLOOR))


def change_for(event: PaymentEvent, rate: Decimal, earned_before: int | None) -> tuple[str, int]:
    """The entry an event writes: (kind, delta).

    A cancellation takes back what the completion earned (`earned_before`); if the
    completion has not been applied yet, the rule's amount, which the completion will add.
    """
    if event.event_type == PAYMENT_COMPLETED:
        return EARN, points_for(event.amount, rate)
    earned = earned_before if earned_before is not None else points_for(event.amount, rate)
    return REVERT, -earned
