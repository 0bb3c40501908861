"""The payment use cases over fake repositories: the rules, without any server."""

from datetime import datetime

import pytest

from services.payment.adapters.outbox import OutboxRepository
from services.payment.domain.commands import CancelPayment, CreditWallet, Pay
from services.payment.domain.errors import (
    CreditReferenceReused,
    IdempotencyKeyReused,
    InsufficientBalance,
    WalletExists,
    WalletNotFound,
)
from services.payment.domain.model import PaymentStatus
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
