"""The payment use cases over fake repositories: the rules, without any server."""

from datetime import datetime

import pytest

from services.payment.adapters.outbox import OutboxRepository
from services.payment.adapters.repository import WalletRepository
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay
from services.payment.domain.errors import (
    ConcurrentUpdate,
    CreditReferenceReused,
    IdempotencyKeyReused,
    InsufficientBalance,
    WalletExists,
    WalletNotFound,
)
from services.payment.domain.model import PaymentStatus, Wallet
from services.payment.service_layer.handlers import PaymentService
from services.payment.service_layer.locking import DatabaseRowLocking
from shared.events import PaymentEvent
from tests.unit.fakes import FakeStore, FakeUnitOfWork


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def service(store: FakeStore) -> PaymentService:
    return PaymentService(
        DatabaseRowLocking(),
        lambda token, row_locks: FakeUnitOfWork(store),
        events_topic="payment.events",
    )


async def funded(service: PaymentService, user: str, amount: int) -> None:
    await service.create_wallet(user)
    await service.credit(CreditWallet(user, amount, f"seed-{user}"))


def ledger_sum(store: FakeStore, user: str) -> int:
    return sum(entry.delta for entry in store.ledger if entry.user_id == user)


async def test_payment_debits_the_wallet_and_writes_a_ledger_entry(service, store):
    await funded(service, "u1", 10_000)
    result = await service.pay(Pay("o1", "u1", 3_000))
    assert not result.replayed and result.payment.balance_after == 7_000
    assert store.wallets["u1"].balance == 7_000 == ledger_sum(store, "u1")


async def test_payment_larger_than_the_balance_changes_nothing(service, store):
    await funded(service, "u1", 1_000)
    with pytest.raises(InsufficientBalance):
        await service.pay(Pay("o1", "u1", 1_001))
    assert store.wallets["u1"].balance == 1_000 and not store.payments


async def test_repeated_order_id_returns_the_first_payment(service, store):
    await funded(service, "u1", 10_000)
    first = await service.pay(Pay("o1", "u1", 1_000))
    again = await service.pay(Pay("o1", "u1", 1_000))
    assert again.replayed and again.payment == first.payment
    assert store.wallets["u1"].balance == 9_000
    with pytest.raises(IdempotencyKeyReused):
        await service.pay(Pay("o1", "u1", 2_000))


async def test_cancel_refunds_once(service, store):
    await funded(service, "u1", 10_000)
    paid = await service.pay(Pay("o1", "u1", 4_000))
    for _ in range(3):
        cancelled = await service.cancel(CancelPayment(paid.payment.payment_id))
        assert cancelled.status is PaymentStatus.CANCELLED
    assert store.wallets["u1"].balance == 10_000 == ledger_sum(store, "u1")


async def test_unknown_wallet_and_used_wallet(service):
    with pytest.raises(WalletNotFound):
        await service.pay(Pay("o1", "ghost", 1))
    await funded(service, "u1", 5)
    with pytest.raises(WalletExists):
        await service.create_wallet("u1")


class Boom(Exception):
    pass


class ExplodingOutbox(OutboxRepository):
    """Fails the last write of a payment, after the debit, the payment and the ledger."""

    async def add(self, topic: str, event: PaymentEvent, now: datetime) -> None:
        raise Boom


async def test_a_failure_inside_the_locked_transaction_commits_nothing(service, store):
    await funded(service, "u1", 10_000)
    store_before = (dict(store.wallets), list(store.ledger))

    def exploding_unit_of_work(token: int | None, row_locks: bool) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(store)
        uow.outbox = ExplodingOutbox()
        return uow

    failing = PaymentService(
        DatabaseRowLocking(), exploding_unit_of_work, events_topic="payment.events"
    )
    with pytest.raises(Boom):
        await failing.pay(Pay("o1", "u1", 1))
    assert (store.wallets, store.ledger) == store_before
    assert not store.payments


async def test_a_credit_reference_is_credited_once(service, store):
    await service.create_wallet("u1")
    first = await service.credit(CreditWallet("u1", 500, "ref-1"))
    again = await service.credit(CreditWallet("u1", 500, "ref-1"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.wallet.balance == 500 == ledger_sum(store, "u1")
    with pytest.raises(CreditReferenceReused, match="already credited 500"):
        await service.credit(CreditWallet("u1", 600, "ref-1"))
    assert store.wallets["u1"].balance == 500


class StaleWallets:
    """The first `conflicts[0]` writes find the wallet changed under them, as when lock
    holders of two kinds meet during a fail-over; later writes go through."""

    def __init__(self, inner: WalletRepository, conflicts: list[int]) -> None:
        self.inner = inner
        self.conflicts = conflicts

    async def get(self, user_id: str, covering: int = 0) -> Wallet | None:
        return await self.inner.get(user_id, covering)

    async def update_balance(self, old: Wallet, new: Wallet, now: datetime) -> None:
        if self.conflicts[0] > 0:
            self.conflicts[0] -= 1
            raise ConcurrentUpdate(old.user_id)
        await self.inner.update_balance(old, new, now)


def stale(store: FakeStore, conflicts: list[int]) -> PaymentService:
    def unit_of_work(token: int | None, row_locks: bool) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(store)
        uow.wallets = StaleWallets(uow.wallets, conflicts)  # type: ignore[assignment]
        return uow

    return PaymentService(DatabaseRowLocking(), unit_of_work, events_topic="payment.events")


async def test_a_write_that_met_a_changed_wallet_runs_again_and_debits_once(service, store):
    await funded(service, "u1", 10_000)
    conflicts = [1]
    result = await stale(store, conflicts).pay(Pay("o-retry", "u1", 1_000))
    assert conflicts == [0]
    assert result.payment.balance_after == 9_000 == store.wallets["u1"].balance
    assert ledger_sum(store, "u1") == 9_000 and len(store.payments) == 1


async def test_conflicts_beyond_the_retries_surface_and_write_nothing(service, store):
    await service.create_wallet("u2")
    stubborn = stale(store, [PaymentService.conflict_retries])
    with pytest.raises(ConcurrentUpdate):
        await stubborn.credit(CreditWallet("u2", 100, "ref-stale"))
    assert store.wallets["u2"].balance == 0 == ledger_sum(store, "u2")
