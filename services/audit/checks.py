"""The invariants, checked one key range at a time. Plain Python: no I/O.

Each function gets the rows of one range of keys (a chunk of wallets, payments, charges...)
and everything the other tables hold for exactly that range, and writes what is wrong to
`Findings`. Rows whose key falls in the range but has no parent (a ledger entry of a payment
that does not exist) are in the range too, so orphans are found without a second pass.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.audit.findings import Findings, Id
from services.payment.domain.model import ChargeStatus, LedgerKind, PaymentStatus
from services.points.domain import EARN, REVERT, points_for

WALLET_BALANCE_MISMATCH = "WALLET_BALANCE_MISMATCH"
WALLET_NEGATIVE = "WALLET_NEGATIVE"
LEDGER_WITHOUT_WALLET = "LEDGER_WITHOUT_WALLET"
LEDGER_WITHOUT_REFERENCE = "LEDGER_WITHOUT_REFERENCE"
PAYMENT_DEBITS = "PAYMENT_DEBITS"
PAYMENT_REFUNDS = "PAYMENT_REFUNDS"
CHARGE_CREDITS = "CHARGE_CREDITS"
CHARGE_PENDING_TOO_LONG = "CHARGE_PENDING_TOO_LONG"
OUTBOX_STALLED = "OUTBOX_STALLED"
POINTS_BALANCE_MISMATCH = "POINTS_BALANCE_MISMATCH"
POINTS_MISSING = "POINTS_MISSING"
POINTS_WRONG = "POINTS_WRONG"
POINTS_APPLIED_TWICE = "POINTS_APPLIED_TWICE"
POINTS_WITHOUT_PAYMENT = "POINTS_WITHOUT_PAYMENT"
POINTS_WITHOUT_INBOX = "POINTS_WITHOUT_INBOX"

# In-flight kinds: not errors while younger than their limit.
CHARGE_PENDING = "CHARGE_PENDING"
OUTBOX_UNPUBLISHED = "OUTBOX_UNPUBLISHED"
POINTS_PENDING = "POINTS_PENDING"

CHECKS = (
    WALLET_BALANCE_MISMATCH, WALLET_NEGATIVE, LEDGER_WITHOUT_WALLET, LEDGER_WITHOUT_REFERENCE,
    PAYMENT_DEBITS, PAYMENT_REFUNDS, CHARGE_CREDITS, CHARGE_PENDING_TOO_LONG, OUTBOX_STALLED,
    POINTS_BALANCE_MISMATCH, POINTS_MISSING, POINTS_WRONG, POINTS_APPLIED_TWICE,
    POINTS_WITHOUT_PAYMENT, POINTS_WITHOUT_INBOX,
)  # fmt: skip


@dataclass(frozen=True)
class Account:
    """A balance and what its entries add up to (a wallet and its ledger, or points)."""

    user_id: str
    balance: int


@dataclass(frozen=True)
class EntryTotal:
    user_id: str
    total: int
    entries: int


@dataclass(frozen=True)
class LedgerRow:
    entry_id: int
    user_id: str
    kind: str
    reference: str
    delta: int


@dataclass(frozen=True)
class PaymentRow:
    payment_id: str
    user_id: str
    amount: int
    status: str
    created_at: datetime
    cancelled_at: datetime | None


@dataclass(frozen=True)
class ChargeRow:
    charge_id: str
    user_id: str
    amount: int
    status: str
    created_at: datetime


@dataclass(frozen=True)
class OutboxRow:
    id: int
    event_id: str
    event_type: str
    event_key: str
    created_at: datetime


@dataclass(frozen=True)
class PointsRow:
    payment_id: str
    user_id: str
    kind: str
    delta: int
    event_id: str
    in_inbox: bool


def _age(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def check_balances(
    accounts: Iterable[Account],
    totals: Iterable[EntryTotal],
    found: Findings,
    mismatch: str = WALLET_BALANCE_MISMATCH,
    orphan: str = LEDGER_WITHOUT_WALLET,
    negative: str | None = WALLET_NEGATIVE,
) -> None:
    """balance == sum of entries, and not negative when `negative` names a check; entries
    only for accounts that exist."""
    by_user = {total.user_id: total for total in totals}
    for account in accounts:
        total = by_user.pop(account.user_id, EntryTotal(account.user_id, 0, 0))
        if account.balance != total.total:
            found.problem(
                mismatch,
                f"balance {account.balance} != sum of {total.entries} entries {total.total}",
                user_id=account.user_id,
            )
        if negative and account.balance < 0:
            found.problem(negative, f"balance {account.balance}", user_id=account.user_id)
    for total in by_user.values():
        found.problem(
            orphan, f"{total.entries} entries summing to {total.total}", user_id=total.user_id
        )


def _by_reference(entries: Iterable[LedgerRow]) -> dict[tuple[str, str], list[LedgerRow]]:
    grouped: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for entry in entries:
        grouped[(entry.kind, entry.reference)].append(entry)
    return grouped


def _orphans(grouped: dict[tuple[str, str], list[LedgerRow]], found: Findings, of: str) -> None:
    for (kind, reference), entries in grouped.items():
        for entry in entries:
            found.problem(
                LEDGER_WITHOUT_REFERENCE,
                f"{kind} entry of {entry.delta} names {of} {reference!r}, which does not exist",
                entry_id=entry.entry_id,
                user_id=entry.user_id,
            )


def _one_entry(entries: list[LedgerRow], delta: int, user_id: str, what: str) -> str | None:
    """None when `entries` is exactly one entry of `delta` on `user_id`, else why not."""
    if len(entries) != 1:
        return f"{len(entries)} {what} entries, expected 1"
    [entry] = entries
    if entry.delta != delta or entry.user_id != user_id:
        return (
            f"{what} entry {entry.entry_id} is {entry.delta} on {entry.user_id}, "
            f"expected {delta} on {user_id}"
        )
    return None


def check_payments(
    payments: Iterable[PaymentRow], entries: Iterable[LedgerRow], found: Findings
) -> None:
    """One debit per payment; one refund per CANCELLED payment, none for a COMPLETED one."""
    grouped = _by_reference(entries)
    for p in payments:
        debits = grouped.pop((LedgerKind.PAYMENT.value, p.payment_id), [])
        refunds = grouped.pop((LedgerKind.REFUND.value, p.payment_id), [])
        wrong = _one_entry(debits, -p.amount, p.user_id, "debit")
        if wrong:
            found.problem(PAYMENT_DEBITS, f"{p.status}: {wrong}", payment_id=p.payment_id)
        if p.status == PaymentStatus.CANCELLED.value:
            wrong = _one_entry(refunds, p.amount, p.user_id, "refund")
        elif p.status == PaymentStatus.COMPLETED.value:
            wrong = f"{len(refunds)} refund entries, expected 0" if refunds else None
        else:
            wrong = f"unknown status {p.status!r}"
        if wrong:
            found.problem(PAYMENT_REFUNDS, f"{p.status}: {wrong}", payment_id=p.payment_id)
    _orphans(grouped, found, "payment")


def check_charges(
    charges: Iterable[ChargeRow],
    entries: Iterable[LedgerRow],
    now: datetime,
    give_up_seconds: float,
    found: Findings,
) -> int:
    """One credit per SUCCEEDED charge, none otherwise; PENDING only until the give-up age.

    Returns the money of the charges still pending (in flight between bank and wallet).
    """
    grouped = _by_reference(entries)
    pending = 0
    for c in charges:
        credits = grouped.pop((LedgerKind.CHARGE.value, c.charge_id), [])
        if c.status == ChargeStatus.SUCCEEDED.value:
            wrong = _one_entry(credits, c.amount, c.user_id, "credit")
        else:
            wrong = f"{len(credits)} credit entries, expected 0" if credits else None
        if wrong:
            found.problem(CHARGE_CREDITS, f"{c.status}: {wrong}", charge_id=c.charge_id)
        if c.status == ChargeStatus.PENDING.value:
            pending += c.amount
            age = _age(now, c.created_at)
            if age > give_up_seconds:
                found.problem(
                    CHARGE_PENDING_TOO_LONG,
                    f"PENDING for {age:.0f} s, the reconciler gives up at {give_up_seconds:.0f} s",
                    charge_id=c.charge_id,
                    user_id=c.user_id,
                )
            else:
                found.flying(
                    CHARGE_PENDING, f"{c.amount} pending for {age:.1f} s", charge_id=c.charge_id
                )
    _orphans(grouped, found, "charge")
    return pending


def check_credits(entries: Iterable[LedgerRow], found: Findings) -> None:
    """Operator credits need a reference; entries of an unknown kind have none at all."""
    for entry in entries:
        if entry.kind == LedgerKind.CREDIT.value and entry.reference.strip():
            continue
        found.problem(
            LEDGER_WITHOUT_REFERENCE,
            f"{entry.kind} entry of {entry.delta} with reference {entry.reference!r}",
            entry_id=entry.entry_id,
            user_id=entry.user_id,
        )


def check_outbox(rows: Iterable[OutboxRow], now: datetime, max_age: float, found: Findings) -> None:
    """Unpublished rows are in flight until `max_age`, then the relay is stalled."""
    for row in rows:
        age = _age(now, row.created_at)
        ids: dict[str, Id] = {"outbox_id": row.id, "event_id": row.event_id}
        if age > max_age:
            detail = f"{row.event_type} for {row.event_key} unpublished for {age:.0f} s"
            found.problem(OUTBOX_STALLED, f"{detail} (limit {max_age:.0f} s)", **ids)
        else:
            found.flying(OUTBOX_UNPUBLISHED, f"{row.event_type} for {age:.1f} s", **ids)


def check_points(
    payments: Iterable[PaymentRow],
    entries: Iterable[PointsRow],
    rate: Decimal,
    now: datetime,
    grace_seconds: float,
    found: Findings,
) -> None:
    """Per payment: one EARN of floor(rate x amount), and one REVERT of minus that if cancelled.

    With every account equal to its entries (check_balances), this makes each user's points
    equal floor(rate x amount) over their completed, uncancelled payments. A missing effect
    younger than the grace period is in flight (the event is on its way through Kafka).
    """
    grouped: dict[str, list[PointsRow]] = defaultdict(list)
    for entry in entries:
        grouped[entry.payment_id].append(entry)
    for p in payments:
        mine = grouped.pop(p.payment_id, [])
        earns = [e for e in mine if e.kind == EARN]
        reverts = [e for e in mine if e.kind == REVERT]
        expected = points_for(p.amount, rate)
        _expect_once(p, EARN, earns, expected, p.created_at, now, grace_seconds, found)
        if p.status == PaymentStatus.CANCELLED.value:
            cancelled_at = p.cancelled_at or p.created_at
            _expect_once(p, REVERT, reverts, -expected, cancelled_at, now, grace_seconds, found)
        elif reverts:
            found.problem(
                POINTS_WRONG, f"{p.status} payment has {len(reverts)} REVERT entries",
                payment_id=p.payment_id, user_id=p.user_id,
            )  # fmt: skip
        for e in mine:
            if e.kind not in (EARN, REVERT):
                found.problem(POINTS_WRONG, f"entry of unknown kind {e.kind!r}", **_ids(e))
            if e.user_id != p.user_id:
                found.problem(
                    POINTS_WRONG, f"entry on {e.user_id}, payment of {p.user_id}", **_ids(e)
                )
            if not e.in_inbox:
                found.problem(POINTS_WITHOUT_INBOX, "event id not in processed_events", **_ids(e))
    for orphans in grouped.values():
        for e in orphans:
            found.problem(POINTS_WITHOUT_PAYMENT, f"{e.kind} {e.delta}, no such payment", **_ids(e))


def _ids(e: PointsRow) -> dict[str, str]:
    return {"payment_id": e.payment_id, "event_id": e.event_id, "user_id": e.user_id}


def _expect_once(
    p: PaymentRow,
    kind: str,
    entries: list[PointsRow],
    delta: int,
    since: datetime,
    now: datetime,
    grace_seconds: float,
    found: Findings,
) -> None:
    ids = {"payment_id": p.payment_id, "user_id": p.user_id}
    if not entries:
        age = _age(now, since)
        if age <= grace_seconds:
            found.flying(POINTS_PENDING, f"{kind} not applied yet ({age:.1f} s old)", **ids)
        else:
            found.problem(POINTS_MISSING, f"{kind} not applied after {age:.0f} s", **ids)
        return
    if len(entries) > 1:
        events = ",".join(e.event_id for e in entries)
        found.problem(POINTS_APPLIED_TWICE, f"{len(entries)} {kind} entries: {events}", **ids)
    for e in entries:
        if e.delta != delta:
            found.problem(POINTS_WRONG, f"{kind} of {e.delta}, expected {delta}", **ids)
