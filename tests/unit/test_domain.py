from datetime import datetime

import pytest

from services.payment.domain.errors import InsufficientBalance
from services.payment.domain.model import Payment, PaymentStatus, Wallet
from shared.db import split_statements


def test_debit_beyond_the_balance_raises_and_leaves_the_wallet():
    wallet = Wallet("u1", 100)
    with pytest.raises(InsufficientBalance):
        wallet.debited(101)
    assert wallet.debited(100).balance == 0 and wallet.balance == 100


def test_a_cancelled_payment_is_no_longer_cancellable():
    payment = Payment("p", "o", "u", 5, PaymentStatus.COMPLETED, 0, datetime(2026, 1, 1))
    cancelled = payment.cancelled(datetime(2026, 1, 2))
    assert payment.cancellable and not cancelled.cancellable
    assert cancelled.same_request("u", 5) and not cancelled.same_request("u", 6)


def test_migration_files_split_into_statements_without_comments():
    sql = "-- a comment\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (\n  y INT\n);\n"
    assert split_statements(sql) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (\n  y INT\n)"]
