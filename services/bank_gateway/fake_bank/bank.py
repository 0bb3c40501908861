"""The fake bank's books: plain Python, no I/O. Transfers are idempotent by transfer_id."""

import random
from dataclasses import dataclass, field
from enum import StrEnum


class TransferStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    DECLINED = "DECLINED"


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    account: str
    amount: int
    direction: str
    status: TransferStatus

    def same_request(self, account: str, amount: int, direction: str) -> bool:
        return (self.account, self.amount, self.direction) == (account, amount, direction)


@dataclass
class Faults:
    error_rate: float = 0.0
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    down: bool = False
    decline_rate: float = 0.0


class TransferConflict(Exception):
    """A transfer_id seen before with another account, amount or direction."""


class InjectedError(Exception):
    """A failure the operator asked for through the error rate; nothing was applied."""


@dataclass
class Bank:
    initial_balance: int
    rng: random.Random = field(default_factory=random.Random)
    faults: Faults = field(default_factory=Faults)
    balances: dict[str, int] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    requests: int = 0
    transfer_requests: int = 0  # POST /transfers only: how often money was asked to move

    def transfer(self, transfer_id: str, account: str, amount: int, direction: str) -> Transfer:
        """Apply a transfer once; a repeat returns the first outcome."""
        known = self.transfers.get(transfer_id)
        if known is not None:
            if not known.same_request(account, amount, direction):
                raise TransferConflict(transfer_id)
            return known
        if self.rng.random() < self.faults.error_rate:
            raise InjectedError(transfer_id)
        balance = self.balances.setdefault(account, self.initial_balance)
        declined = self.rng.random() < self.faults.decline_rate or (
            direction == "withdraw" and amount > balance
        )
        if not declined:
            self.balances[account] = balance + (amount if direction == "deposit" else -amount)
        status = TransferStatus.DECLINED if declined else TransferStatus.SUCCEEDED
        record = Transfer(transfer_id, account, amount, direction, status)
        self.transfers[transfer_id] = record
        return record

    def latency_seconds(self) -> float:
        extra = (
            self.rng.uniform(0, self.faults.latency_jitter_ms)
            if self.faults.latency_jitter_ms
            else 0
        )
        return (self.faults.latency_ms + extra) / 1000

    def account(self, account: str) -> dict[str, int | str]:
        moved = [t for t in self.transfers.values() if t.account == account]
        done = [t for t in moved if t.status is TransferStatus.SUCCEEDED]
        return {
            "account": account,
            "balance": self.balances.get(account, self.initial_balance),
            "withdrawn": sum(t.amount for t in done if t.direction == "withdraw"),
            "deposited": sum(t.amount for t in done if t.direction == "deposit"),
            "succeeded_transfers": len(done),
        }
