"""Charge rules over fake repositories and a fake bank port."""

from datetime import datetime, timedelta

import pytest

from services.payment.adapters.bank import BankPort
from services.payment.domain.commands import ChargeWallet
from services.payment.domain.errors import BankOutcomeUnknown, BankUnavailable, ChargeDeclined
from services.payment.domain.model import ChargeStatus, FailureReason
from services.payment.service_layer.charges import ChargeService
from services.payment.service_layer.locking import DatabaseRowLocking
from tests.unit.fakes import FakeStore, FakeUnitOfWork


class FakeBank(BankPort):
    def __init__(self) -> None:
        self.transfers: dict[str, str] = {}
        self.next_error: Exception | None = None
        self.apply_despite_error = False
        self.withdrawals = 0

    async def withdraw(self, transfer_id: str, account: str, amount: int) -> None:
        self.withdrawals += 1
        if self.next_error is not None:
            error, self.next_error = self.next_error, None
            if self.apply_despite_error:
                self.transfers.setdefault(transfer_id, "SUCCEEDED")
            raise error
        self.transfers.setdefault(transfer_id, "SUCCEEDED")

    async def transfer_status(self, transfer_id: str) -> str | None:
        return self.transfers.get(transfer_id)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, 0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def setup():
    store, bank, clock = FakeStore(), FakeBank(), Clock()
    service = ChargeService(
        DatabaseRowLocking(), lambda token, row_locks: FakeUnitOfWork(store), bank, clock
    )
    return store, bank, clock, service


async def with_wallet(store: FakeStore, user: str) -> None:
    async with FakeUnitOfWork(store) as uow:
        await uow.wallets.add(user, datetime(2026, 1, 1))
        await uow.commit()


async def test_successful_charge_credits_once_and_a_repeat_replays(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    first = await service.charge(ChargeWallet("c1", "u1", 500))
    again = await service.charge(ChargeWallet("c1", "u1", 500))
    assert first.charge.status is ChargeStatus.SUCCEEDED and not first.replayed
    assert again.replayed and store.wallets["u1"].balance == 500
    assert [e.reference for e in store.ledger] == ["c1"]


async def test_declined_charge_fails_for_good(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error = ChargeDeclined("c1")
    for _ in range(2):
        with pytest.raises(ChargeDeclined):
            await service.charge(ChargeWallet("c1", "u1", 500))
    assert store.charges["c1"].failure_reason is FailureReason.DECLINED
    assert store.wallets["u1"].balance == 0


async def test_unavailable_bank_fails_the_charge_but_a_retry_runs_it(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error = BankUnavailable("circuit open")
    with pytest.raises(BankUnavailable):
        await service.charge(ChargeWallet("c1", "u1", 500))
    assert store.charges["c1"].status is ChargeStatus.FAILED
    retried = await service.charge(ChargeWallet("c1", "u1", 500))
    assert retried.charge.status is ChargeStatus.SUCCEEDED and store.wallets["u1"].balance == 500


async def test_unknown_outcome_stays_pending_and_the_reconciler_settles_it(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error, bank.apply_despite_error = BankOutcomeUnknown("timeout"), True
    pending = await service.charge(ChargeWallet("c1", "u1", 500))
    assert pending.charge.status is ChargeStatus.PENDING and store.wallets["u1"].balance == 0
    assert await service.reconcile(min_age=5, give_up_after=60, batch=10) == 0  # too young
    clock.now += timedelta(seconds=10)
    assert await service.reconcile(min_age=5, give_up_after=60, batch=10) == 1
    assert await service.reconcile(min_age=5, give_up_after=60, batch=10) == 0
    assert store.wallets["u1"].balance == 500 and len(store.ledger) == 1


async def test_a_charge_the_bank_never_received_fails_after_the_give_up_age(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error = BankOutcomeUnknown("timeout")
    await service.charge(ChargeWallet("c1", "u1", 500))
    clock.now += timedelta(seconds=30)
    assert await service.reconcile(min_age=5, give_up_after=60, batch=10) == 0
    clock.now += timedelta(seconds=60)
    assert await service.reconcile(min_age=5, give_up_after=60, batch=10) == 1
    assert store.charges["c1"].failure_reason is FailureReason.NOT_AT_BANK
    assert store.wallets["u1"].balance == 0


async def test_a_retry_of_a_charge_left_pending_asks_the_bank_and_does_not_send_it_again(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error, bank.apply_despite_error = BankOutcomeUnknown("process died"), True
    await service.charge(ChargeWallet("c1", "u1", 500))  # money moved, answer lost
    retried = await service.charge(ChargeWallet("c1", "u1", 500))
    assert retried.charge.status is ChargeStatus.SUCCEEDED
    assert bank.withdrawals == 1 and store.wallets["u1"].balance == 500
    assert [e.reference for e in store.ledger] == ["c1"]


async def test_a_retry_of_a_pending_charge_the_bank_never_saw_sends_it_once(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error = BankOutcomeUnknown("lost before the bank")
    await service.charge(ChargeWallet("c1", "u1", 500))
    retried = await service.charge(ChargeWallet("c1", "u1", 500))
    assert retried.charge.status is ChargeStatus.SUCCEEDED and bank.withdrawals == 2
    assert store.wallets["u1"].balance == 500 and len(store.ledger) == 1


async def test_a_retry_of_a_pending_charge_the_bank_declined_is_declined(setup):
    store, bank, clock, service = setup
    await with_wallet(store, "u1")
    bank.next_error = BankOutcomeUnknown("process died")
    await service.charge(ChargeWallet("c1", "u1", 500))
    bank.transfers["c1"] = "DECLINED"
    with pytest.raises(ChargeDeclined):
        await service.charge(ChargeWallet("c1", "u1", 500))
    assert store.charges["c1"].failure_reason is FailureReason.DECLINED
    assert bank.withdrawals == 1 and store.wallets["u1"].balance == 0
