"""In-memory repositories and unit of work, for unit tests of the service layer."""

from datetime import datetime

from services.payment.adapters.outbox import OutboxRepository
from services.payment.adapters.repository import (
    ChargeRepository,
    LedgerRepository,
    PaymentRepository,
    WalletRepository,
)
from services.payment.adapters.uow import UnitOfWork
from services.payment.domain.errors import ConcurrentUpdate, OrderTaken
from services.payment.domain.model import (
    Charge,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    Payment,
    Wallet,
)
from shared.events import PaymentEvent


class FakeStore:
    """What the fake database holds; shared by every FakeUnitOfWork made from it."""

    def __init__(self) -> None:
        self.wallets: dict[str, Wallet] = {}
        self.payments: dict[str, Payment] = {}
        self.ledger: list[LedgerEntry] = []
        self.charges: dict[str, Charge] = {}
        self.outbox: list[tuple[str, PaymentEvent]] = []


class FakeWallets(WalletRepository):
    def __init__(self, staged: dict[str, Wallet]) -> None:
        self.staged = staged

    async def get(self, user_id: str, covering: int = 0) -> Wallet | None:
        return self.staged.get(user_id)

    async def add(self, user_id: str, now: datetime) -> bool:
        if user_id in self.staged:
            return False
        self.staged[user_id] = Wallet(user_id, 0)
        return True

    async def update_balance(self, old: Wallet, new: Wallet, now: datetime) -> None:
        if self.staged.get(old.user_id) != old:
            raise ConcurrentUpdate(old.user_id)
        self.staged[old.user_id] = new


class FakePayments(PaymentRepository):
    def __init__(self, staged: dict[str, Payment]) -> None:
        self.staged = staged

    async def get(self, payment_id: str) -> Payment | None:
        return self.staged.get(payment_id)

    async def by_order_id(self, order_id: str) -> Payment | None:
        return next((p for p in self.staged.values() if p.order_id == order_id), None)

    async def add(self, payment: Payment) -> None:
        if any(p.order_id == payment.order_id for p in self.staged.values()):
            raise OrderTaken(payment.order_id)  # the unique key of the real table
        self.staged[payment.payment_id] = payment

    async def mark_cancelled(self, payment: Payment) -> None:
        self.staged[payment.payment_id] = payment


class FakeLedger(LedgerRepository):
    def __init__(self, staged: list[LedgerEntry]) -> None:
        self.staged = staged

    async def add(self, entry: LedgerEntry, now: datetime) -> None:
        self.staged.append(entry)

    async def by_reference(self, kind: LedgerKind, reference: str) -> LedgerEntry | None:
        return next((e for e in self.staged if (e.kind, e.reference) == (kind, reference)), None)


class FakeCharges(ChargeRepository):
    def __init__(self, staged: dict[str, Charge]) -> None:
        self.staged = staged

    async def get(self, charge_id: str) -> Charge | None:
        return self.staged.get(charge_id)

    async def add(self, charge: Charge) -> bool:
        if charge.charge_id in self.staged:
            return False
        self.staged[charge.charge_id] = charge
        return True

    async def move(self, before: Charge, after: Charge, now: datetime) -> bool:
        current = self.staged.get(before.charge_id)
        if current is None or current.status is not before.status:
            return False
        self.staged[before.charge_id] = after
        return True

    async def pending(self, created_before: datetime, limit: int) -> list[Charge]:
        found = [
            c
            for c in self.staged.values()
            if c.status is ChargeStatus.PENDING and c.created_at < created_before
        ]
        return found[:limit]


class FakeOutbox(OutboxRepository):
    def __init__(self, staged: list[tuple[str, PaymentEvent]]) -> None:
        self.staged = staged

    async def add(self, topic: str, event: PaymentEvent, now: datetime) -> None:
        self.staged.append((topic, event))


class FakeUnitOfWork(UnitOfWork):
    """Stages changes on copies; commit() publishes them to the store."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self._wallets = dict(store.wallets)
        self._payments = dict(store.payments)
        self._ledger = list(store.ledger)
        self._charges = dict(store.charges)
        self._outbox = list(store.outbox)
        self.wallets = FakeWallets(self._wallets)
        self.payments = FakePayments(self._payments)
        self.ledger = FakeLedger(self._ledger)
        self.charges = FakeCharges(self._charges)
        self.outbox = FakeOutbox(self._outbox)
        self.committed = False

    async def commit(self) -> None:
        self.store.wallets = self._wallets
        self.store.payments = self._payments
        self.store.ledger = self._ledger
        self.store.charges = self._charges
        self.store.outbox = self._outbox
        self.committed = True

    async def rollback(self) -> None:
        return None
