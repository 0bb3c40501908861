"""Domain errors. The HTTP edge maps each class (or its nearest mapped parent) to a status
and code.

DomainError
├── WalletNotFound, PaymentNotFound
├── WalletExists             creating a wallet that exists in another state
├── InsufficientBalance      a debit larger than the balance
├── IdempotencyKeyReused     an order_id or charge_id seen before with another body
│   └── CreditReferenceReused   an operator credit's reference, with another wallet or amount
├── OrderTaken               a payment row for this order_id exists (the unique key said so)
├── ConcurrentUpdate         the row changed under a holder whose lock was lost (retriable)
└── BankProblem              the bank, seen through the bank gateway
    ├── ChargeDeclined       the bank said no; final
    ├── BankUnavailable      the bank was not asked (gateway down, circuit open); nothing
    │                        moved, retriable after `retry_after` seconds
    ├── BankError            the bank failed; the charge is reconciled (retriable)
    └── BankOutcomeUnknown   no answer: the transfer may have happened; the charge stays
                             PENDING until the reconciler asks the bank (retriable)
"""


class DomainError(Exception):
    """Base of the domain's errors; the HTTP edge maps each class."""


class WalletNotFound(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"wallet {user_id!r} does not exist")


class PaymentNotFound(DomainError):
    def __init__(self, reference: str) -> None:
        super().__init__(f"payment {reference!r} does not exist")


class WalletExists(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"wallet {user_id!r} already exists and has been used")


class InsufficientBalance(DomainError):
    def __init__(self, user_id: str, balance: int, amount: int) -> None:
        super().__init__(f"wallet {user_id!r} holds {balance}, less than {amount}")


class IdempotencyKeyReused(DomainError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} was already used for a request with another body")


class CreditReferenceReused(IdempotencyKeyReused):
    def __init__(self, reference: str, user_id: str, amount: int) -> None:
        DomainError.__init__(
            self, f"reference {reference!r} already credited {amount} to wallet {user_id!r}"
        )


class OrderTaken(DomainError):
    """Raised by the payments repository; the service turns it into a replay or a 422."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} has a payment already")


class ConcurrentUpdate(DomainError):
    def __init__(self, user_id: str) -> None:
        super().__init__(f"wallet {user_id!r} changed under a stale lock; nothing was written")


class BankProblem(DomainError):
    pass


class ChargeDeclined(BankProblem):
    def __init__(self, charge_id: str) -> None:
        super().__init__(f"the bank declined charge {charge_id!r}")


class BankUnavailable(BankProblem):
    def __init__(self, detail: str, retry_after: float = 1.0) -> None:
        super().__init__(f"the bank is unavailable ({detail}); nothing was moved")
        self.retry_after = retry_after


class BankError(BankProblem):
    def __init__(self, detail: str) -> None:
        super().__init__(f"the bank failed ({detail}); the charge will be reconciled")


class BankOutcomeUnknown(BankProblem):
    """No answer came: the charge stays PENDING until the bank is asked."""
