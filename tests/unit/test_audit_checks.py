"""The audit's checks as plain functions: ages decide in flight vs lost; listing is capped."""

from datetime import datetime, timedelta
from decimal import Decimal

from services.audit import AuditSettings, checks
from services.audit.checks import Account, EntryTotal, PaymentRow, PointsRow
from services.audit.findings import Findings

NOW = datetime(2026, 1, 1, 12, 0, 0)


def payment(pid: str, age: float, status: str = "COMPLETED") -> PaymentRow:
    created = NOW - timedelta(seconds=age)
    cancelled = created if status == "CANCELLED" else None
    return PaymentRow(pid, "alice", 12_345, status, created, cancelled)


def test_missing_points_are_in_flight_within_the_grace_period_and_missing_after():
    found = Findings(max_listed=10)
    young, old = payment("p-young", age=5), payment("p-old", age=500)
    checks.check_points([young, old], [], Decimal("0.01"), NOW, 60, found)
    assert [(f.check, f.ids["payment_id"]) for f in found.in_flight] == [
        (checks.POINTS_PENDING, "p-young")
    ]
    assert [(f.check, f.ids["payment_id"]) for f in found.discrepancies] == [
        (checks.POINTS_MISSING, "p-old")
    ]


def test_cancelled_payment_needs_a_revert_of_exactly_what_was_earned():
    found = Findings(max_listed=10)
    entries = [
        PointsRow("p1", "alice", "EARN", 123, "e1", True),
        PointsRow("p1", "alice", "REVERT", -100, "e2", True),
    ]
    checks.check_points([payment("p1", 500, "CANCELLED")], entries, Decimal("0.01"), NOW, 60, found)
    assert [f.detail for f in found.discrepancies] == ["REVERT of -100, expected -123"]


def test_every_finding_is_counted_but_only_max_listed_are_kept():
    found = Findings(max_listed=2)
    accounts = [Account(f"u{i}", 1) for i in range(5)]
    checks.check_balances(accounts, [EntryTotal("u0", 1, 1)], found)
    assert found.discrepancy_counts[checks.WALLET_BALANCE_MISMATCH] == 4
    assert len(found.discrepancies) == 2


def test_outbox_age_limit_is_read_under_both_names(monkeypatch):
    monkeypatch.setenv("AUDIT_OUTBOX_MAX_AGE", "7")
    assert AuditSettings().audit_outbox_max_age_seconds == 7
    monkeypatch.setenv("AUDIT_OUTBOX_MAX_AGE_SECONDS", "9")
    assert AuditSettings().audit_outbox_max_age_seconds == 9
