"""Audit settings. The facts it shares with the services (database names, the points rate,
the reconciler's give-up age) keep their one home there: the defaults are read from them."""

from decimal import Decimal
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings

from services.payment.settings import PaymentSettings
from services.points.settings import PointsSettings
from shared.settings import ServiceSettings


def _default(settings: type[BaseSettings], name: str) -> Any:
    return settings.model_fields[name].default


class AuditSettings(ServiceSettings):
    payment_mysql_database: str = _default(PaymentSettings, "payment_mysql_database")
    points_mysql_database: str = _default(PointsSettings, "points_mysql_database")
    points_rate: Decimal = _default(PointsSettings, "points_rate")
    charge_reconcile_give_up_seconds: float = _default(
        PaymentSettings, "charge_reconcile_give_up_seconds"
    )

    # Unpublished longer: the relay is stalled. The contract's page calls it AUDIT_OUTBOX_MAX_AGE.
    audit_outbox_max_age_seconds: float = Field(
        60.0,
        validation_alias=AliasChoices("audit_outbox_max_age_seconds", "audit_outbox_max_age"),
    )
    audit_grace_seconds: float = 60.0  # points effect missing for less: in flight, not lost
    audit_batch_size: int = 2000  # rows per key-range read
    audit_max_listed: int = 10000  # findings listed in full; all are counted
