"""The audit's result: a summary, every discrepancy with its ids, what is still in flight."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.audit.findings import Findings

SUMMARY_LINES = (
    ("wallets", "wallets"),
    ("money_in_wallets", "money in wallets"),
    ("ledger_entries", "ledger entries"),
    ("payments", "payments"),
    ("payments_completed", "  completed"),
    ("payments_cancelled", "  cancelled"),
    ("charges", "charges"),
    ("money_in_flight", "money in flight (pending charges)"),
    ("outbox_unpublished", "outbox rows unpublished"),
    ("points_accounts", "points accounts"),
    ("points_total", "points in accounts"),
    ("points_entries", "points entries"),
)


@dataclass
class AuditReport:
    payment_database: str
    points_database: str
    snapshot_at: datetime
    seconds: float
    summary: dict[str, int]
    findings: Findings

    @property
    def ok(self) -> bool:
        return not self.findings.discrepancy_counts

    @property
    def discrepancy_total(self) -> int:
        return sum(self.findings.discrepancy_counts.values())

    @property
    def in_flight_total(self) -> int:
        return sum(self.findings.in_flight_counts.values())

    def to_dict(self) -> dict[str, Any]:
        found = self.findings
        return {
            "ok": self.ok,
            "payment_database": self.payment_database,
            "points_database": self.points_database,
            "snapshot_at": self.snapshot_at.isoformat(timespec="microseconds") + "Z",
            "seconds": round(self.seconds, 3),
            "summary": {key: self.summary.get(key, 0) for key, _ in SUMMARY_LINES},
            "discrepancy_total": self.discrepancy_total,
            "discrepancy_counts": dict(found.discrepancy_counts),
            "discrepancies": [f.to_dict() for f in found.discrepancies],
            "in_flight_total": self.in_flight_total,
            "in_flight_counts": dict(found.in_flight_counts),
            "in_flight": [f.to_dict() for f in found.in_flight],
            "listed_at_most": found.max_listed,
        }

    def text(self) -> str:
        found = self.findings
        lines: list[str | None] = [
            f"audit of {self.payment_database} + {self.points_database},"
            f" snapshot {self.snapshot_at:%Y-%m-%d %H:%M:%S} UTC, {self.seconds:.2f} s",
            "",
        ]
        lines += [f"  {label:<36}{self.summary.get(key, 0):>16,}" for key, label in SUMMARY_LINES]
        lines += ["", f"in flight: {self.in_flight_total}"]
        lines += [f"  {f.line()}" for f in found.in_flight]
        lines += [_unlisted(self.in_flight_total, len(found.in_flight)), ""]
        lines += [f"discrepancies: {self.discrepancy_total}"]
        lines += [f"  {f.line()}" for f in found.discrepancies]
        lines += [_unlisted(self.discrepancy_total, len(found.discrepancies))]
        lines += ["", "OK: no discrepancy" if self.ok else "FAILED: discrepancies found"]
        return "\n".join(line for line in lines if line is not None)


def _unlisted(total: int, listed: int) -> str | None:
    return f"  ... and {total - listed} more, not listed" if total > listed else None
