"""Wallet top-ups: money moves from the user's bank account into the wallet, once.

PENDING is written before the bank is asked, so every transfer the bank may have made has a
row here; the wallet is credited in the same transaction that marks the charge SUCCEEDED,
under the wallet lock, and only after the bank said the transfer succeeded. An answer that
never came leaves the charge PENDING for the reconciler, which asks the bank.

A retry that finds the charge PENDING from an earlier request (whose process may have died
while the bank was being asked) does not send the transfer again blindly: it asks the bank
what became of it, as the reconciler does, and settles from the bank's answer. Only when
the bank has no record of it is the transfer sent, with the same transfer_id, which the
bank applies at most once.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.payment.adapters.bank import BankPort
from services.payment.domain.commands import ChargeWallet
from services.payment.domain.errors import (
    BankError,
    BankOutcomeUnknown,
    BankUnavailable,
    ChargeDeclined,
    IdempotencyKeyReused,
)
from services.payment.domain.model import (
    Charge,
    ChargeStatus,
    FailureReason,
    LedgerKind,
)
from services.payment.service_layer.base import UnitOfWorkFactory, UseCases
from services.payment.service_layer.locking import Locking
from shared.clock import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChargeResult:
    charge: Charge
    replayed: bool  # found final in the database under the same charge_id


class ChargeService(UseCases):
    def __init__(
        self,
        locking: Locking,
        unit_of_work_factory: UnitOfWorkFactory,
        bank: BankPort,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(locking, unit_of_work_factory, clock)
        self.bank = bank

    async def charge(self, cmd: ChargeWallet) -> ChargeResult:
        """SUCCEEDED or PENDING; raises ChargeDeclined, BankUnavailable or BankError."""
        charge, fresh = await self._record(cmd)
        if charge.status is ChargeStatus.SUCCEEDED:
            return ChargeResult(charge, replayed=True)
        if charge.status is ChargeStatus.FAILED:
            raise ChargeDeclined(charge.charge_id)
        if not fresh:
            return ChargeResult(await self._resume(charge), replayed=False)
        return ChargeResult(await self._settle(charge), replayed=False)

    async def _resume(self, charge: Charge) -> Charge:
        """A PENDING charge an earlier request left: settle it from what the bank knows."""
        try:
            status = await self.bank.transfer_status(charge.charge_id)
        except (BankUnavailable, BankOutcomeUnknown, BankError) as exc:
            log.warning("charge %s: bank not answering (%s); left PENDING", charge.charge_id, exc)
            return charge
        log.info("charge %s: resumed from the bank's %s", charge.charge_id, status)
        if status == "SUCCEEDED":
            return await self._complete(charge.user_id, charge.charge_id)
        if status == "DECLINED":
            await self._fail(charge, FailureReason.DECLINED)
            raise ChargeDeclined(charge.charge_id)
        return await self._settle(charge)  # the bank never saw it

    async def _record(self, cmd: ChargeWallet) -> tuple[Charge, bool]:
        """The charge's row and whether this request may send the transfer without asking.

        New rows and re-armed ones (failed before the bank was reached) are sent; a row an
        earlier request left PENDING must be resumed from the bank's record.
        """
        async with self.reading() as uow:
            await self.wallet(uow, cmd.user_id)  # WalletNotFound before any charge row
            fresh = Charge(cmd.charge_id, cmd.user_id, cmd.amount, ChargeStatus.PENDING,
                           self.clock())  # fmt: skip
            if await uow.charges.add(fresh):
                await uow.commit()
                return fresh, True
            charge = await uow.charges.get(cmd.charge_id)
            assert charge is not None
            if not charge.same_request(cmd.user_id, cmd.amount):
                raise IdempotencyKeyReused(cmd.charge_id)
            if charge.retriable and await uow.charges.move(charge, charge.rearmed(), self.clock()):
                await uow.commit()
                return charge.rearmed(), True
            return charge, False

    async def _settle(self, charge: Charge) -> Charge:
        try:
            await self.bank.withdraw(charge.charge_id, charge.user_id, charge.amount)
        except ChargeDeclined:
            await self._fail(charge, FailureReason.DECLINED)
            raise
        except BankUnavailable:
            await self._fail(charge, FailureReason.BANK_UNAVAILABLE)
            raise
        except BankOutcomeUnknown as exc:
            log.warning("charge %s: outcome unknown (%s); left PENDING", charge.charge_id, exc)
            return charge
        return await self.retried(lambda: self._complete(charge.user_id, charge.charge_id))

    async def _complete(self, user_id: str, charge_id: str) -> Charge:
        """Credit the wallet and mark the charge SUCCEEDED, once."""
        async with self.locked_transaction(f"wallet:{user_id}") as uow:
            charge = await uow.charges.get(charge_id)
            wallet = await uow.wallets.get(user_id)
            assert charge is not None and wallet is not None
            if charge.status is not ChargeStatus.PENDING:
                return charge
            credited = wallet.credited(charge.amount)
            done = charge.succeeded(credited.balance)
            now = self.clock()
            if not await uow.charges.move(charge, done, now):
                return charge
            await self.book(uow, wallet, credited, LedgerKind.CHARGE, charge_id, now)
            return done

    async def _fail(self, charge: Charge, reason: FailureReason) -> None:
        """No money moved, so no lock: a conditional move from PENDING is enough."""
        async with self.reading() as uow:
            if await uow.charges.move(charge, charge.failed(reason), self.clock()):
                await uow.commit()

    async def reconcile(self, min_age: float, give_up_after: float, batch: int) -> int:
        """Ask the bank about PENDING charges older than `min_age` seconds; how many ended."""
        now = self.clock()
        async with self.reading() as uow:
            pending = await uow.charges.pending(now - timedelta(seconds=min_age), batch)
        settled = 0
        for charge in pending:
            try:
                status = await self.bank.transfer_status(charge.charge_id)
            except (BankUnavailable, BankOutcomeUnknown, BankError) as exc:
                log.info("reconciler: bank not answering (%s); will try again", exc)
                break
            if status == "SUCCEEDED":
                await self._complete(charge.user_id, charge.charge_id)
            elif status == "DECLINED":
                await self._fail(charge, FailureReason.DECLINED)
            elif status is None and charge.created_at < now - timedelta(seconds=give_up_after):
                await self._fail(charge, FailureReason.NOT_AT_BANK)
            else:
                continue
            settled += 1
            log.info("reconciler: charge %s settled from the bank's %s", charge.charge_id, status)
        return settled
