"""Time as every service stores and shows it: naive UTC in the database, ISO 8601 with Z."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC, as DATETIME columns store it."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime) -> str:
    """`2026-11-24T12:00:00.000000Z` for a naive UTC (or aware) datetime."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"
