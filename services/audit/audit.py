"""The audit run: open both snapshots, stream every table by key ranges, run the checks.

The points snapshot is opened first. Points only ever follow payments, so every points entry
in it belongs to a payment that the (later) payment snapshot holds too; the opposite order
would show points of payments that "do not exist" yet.
"""

import time
from collections import Counter
from datetime import datetime
from decimal import Decimal

from services.audit import checks
from services.audit.checks import (
    Account,
    ChargeRow,
    EntryTotal,
    LedgerRow,
    OutboxRow,
    PaymentRow,
    PointsRow,
)
from services.audit.findings import Findings
from services.audit.report import AuditReport
from services.audit.settings import AuditSettings
from services.audit.snapshot import Row, Snapshot, in_range
from services.payment.domain.model import LedgerKind

OWNED_KINDS = {LedgerKind.PAYMENT.value, LedgerKind.REFUND.value, LedgerKind.CHARGE.value}


def _totals(rows: list[Row]) -> list[EntryTotal]:
    return [EntryTotal(user, int(total), count) for user, total, count in rows]


class Audit:
    def __init__(self, settings: AuditSettings, payment: Snapshot, points: Snapshot) -> None:
        self.settings = settings
        self.payment = payment
        self.points = points
        self.batch = settings.audit_batch_size
        self.found = Findings(settings.audit_max_listed)
        self.summary: Counter[str] = Counter()

    async def run(self, now: datetime) -> None:
        await self.wallets()
        await self.payments(now)
        await self.charges(now)
        await self.other_entries()
        await self.outbox(now)
        await self.points_accounts()

    async def wallets(self) -> None:
        sql = "SELECT user_id, balance FROM wallets WHERE user_id > %s ORDER BY user_id LIMIT %s"
        async for rows, low, high in self.payment.pages(sql, self.batch):
            where, args = in_range("user_id", low, high)
            totals = await self.payment.rows(
                "SELECT user_id, SUM(delta), COUNT(*) FROM ledger_entries"
                f" WHERE {where} GROUP BY user_id",
                args,
            )
            accounts = [Account(user, balance) for user, balance in rows]
            checks.check_balances(accounts, _totals(totals), self.found)
            self.summary["wallets"] += len(accounts)
            self.summary["money_in_wallets"] += sum(a.balance for a in accounts)
            self.summary["ledger_entries"] += sum(count for _, _, count in totals)

    async def _entries(self, kinds: tuple[str, ...], low: str, high: str | None) -> list[LedgerRow]:
        where, args = in_range("reference", low, high)
        among = ", ".join(["%s"] * len(kinds))
        rows = await self.payment.rows(
            "SELECT entry_id, user_id, kind, reference, delta FROM ledger_entries"
            f" WHERE kind IN ({among}) AND {where}",
            [*kinds, *args],
        )
        return [LedgerRow(*row) for row in rows]

    async def payments(self, now: datetime) -> None:
        sql = (
            "SELECT payment_id, user_id, amount, status, created_at, cancelled_at FROM payments"
            " WHERE payment_id > %s ORDER BY payment_id LIMIT %s"
        )
        kinds = (LedgerKind.PAYMENT.value, LedgerKind.REFUND.value)
        rate = Decimal(self.settings.points_rate)
        grace = self.settings.audit_grace_seconds
        async for rows, low, high in self.payment.pages(sql, self.batch):
            payments = [PaymentRow(*row) for row in rows]
            checks.check_payments(payments, await self._entries(kinds, low, high), self.found)
            checks.check_points(
                payments, await self._points(low, high), rate, now, grace, self.found
            )
            self.summary["payments"] += len(payments)
            for p in payments:
                self.summary[f"payments_{p.status.lower()}"] += 1

    async def _points(self, low: str, high: str | None) -> list[PointsRow]:
        where, args = in_range("e.payment_id", low, high)
        rows = await self.points.rows(
            "SELECT e.payment_id, e.user_id, e.kind, e.delta, e.event_id, p.event_id IS NOT NULL"
            " FROM points_entries e LEFT JOIN processed_events p ON p.event_id = e.event_id"
            f" WHERE {where}",
            args,
        )
        return [
            PointsRow(pid, user, kind, delta, eid, bool(seen))
            for pid, user, kind, delta, eid, seen in rows
        ]

    async def charges(self, now: datetime) -> None:
        sql = (
            "SELECT charge_id, user_id, amount, status, created_at FROM charges"
            " WHERE charge_id > %s ORDER BY charge_id LIMIT %s"
        )
        give_up = self.settings.charge_reconcile_give_up_seconds
        async for rows, low, high in self.payment.pages(sql, self.batch):
            charges = [ChargeRow(*row) for row in rows]
            entries = await self._entries((LedgerKind.CHARGE.value,), low, high)
            pending = checks.check_charges(charges, entries, now, give_up, self.found)
            self.summary["charges"] += len(charges)
            self.summary["money_in_flight"] += pending

    async def other_entries(self) -> None:
        """Operator credits without a reference, and entries of kinds nothing owns."""
        blank = await self.payment.rows(
            "SELECT entry_id, user_id, kind, reference, delta FROM ledger_entries"
            " WHERE kind = %s AND reference = ''",  # PAD SPACE: blanks match too
            [LedgerKind.CREDIT.value],
        )
        checks.check_credits([LedgerRow(*row) for row in blank], self.found)
        kinds = [
            kind for (kind,) in await self.payment.rows("SELECT DISTINCT kind FROM ledger_entries")
        ]
        for kind in kinds:
            if kind in OWNED_KINDS or kind == LedgerKind.CREDIT.value:
                continue
            sql = (
                "SELECT reference, entry_id, user_id, kind, delta FROM ledger_entries"
                f" WHERE kind = {self.payment.conn.escape(kind)} AND reference > %s"
                " ORDER BY reference LIMIT %s"
            )
            async for rows, _, _ in self.payment.pages(sql, self.batch):
                entries = [LedgerRow(e, u, k, r, d) for r, e, u, k, d in rows]
                checks.check_credits(entries, self.found)

    async def outbox(self, now: datetime) -> None:
        sql = (
            "SELECT id, event_id, event_type, event_key, created_at FROM outbox"
            " WHERE published_at IS NULL AND id > %s ORDER BY id LIMIT %s"
        )
        max_age = self.settings.audit_outbox_max_age_seconds
        async for rows, _, _ in self.payment.pages(sql, self.batch, start=0):
            checks.check_outbox([OutboxRow(*row) for row in rows], now, max_age, self.found)
            self.summary["outbox_unpublished"] += len(rows)

    async def points_accounts(self) -> None:
        sql = (
            "SELECT user_id, balance FROM points_accounts WHERE user_id > %s"
            " ORDER BY user_id LIMIT %s"
        )
        async for rows, low, high in self.points.pages(sql, self.batch):
            where, args = in_range("user_id", low, high)
            totals = await self.points.rows(
                f"SELECT user_id, SUM(delta), COUNT(*) FROM points_entries WHERE {where}"
                " GROUP BY user_id",
                args,
            )
            accounts = [Account(user, balance) for user, balance in rows]
            checks.check_balances(
                accounts,
                _totals(totals),
                self.found,
                mismatch=checks.POINTS_BALANCE_MISMATCH,
                orphan=checks.POINTS_BALANCE_MISMATCH,
                negative=None,  # a cancellation applied before its payment dips below 0
            )
            self.summary["points_accounts"] += len(accounts)
            self.summary["points_total"] += sum(a.balance for a in accounts)
            self.summary["points_entries"] += sum(count for _, _, count in totals)


async def run_audit(settings: AuditSettings | None = None) -> AuditReport:
    """Check every money and event invariant; the report says what is wrong and what flies."""
    settings = settings or AuditSettings()  # the password comes from .env
    started = time.monotonic()
    points = await Snapshot.open(settings, settings.points_mysql_database)
    try:
        payment = await Snapshot.open(settings, settings.payment_mysql_database)
        try:
            [(now,)] = await payment.rows("SELECT UTC_TIMESTAMP(6)")
            audit = Audit(settings, payment, points)
            await audit.run(now)
        finally:
            await payment.close()
    finally:
        await points.close()
    return AuditReport(
        payment_database=settings.payment_mysql_database,
        points_database=settings.points_mysql_database,
        snapshot_at=now,
        seconds=time.monotonic() - started,
        summary=dict(audit.summary),
        findings=audit.found,
    )
