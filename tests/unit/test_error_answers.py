"""Domain errors as HTTP answers: looked up along the class hierarchy."""

import pytest

from services.payment.domain import errors
from services.payment.entrypoints.errors import status_and_body, status_and_code


def test_a_subclass_of_a_mapped_error_answers_as_its_parent():
    class LateDecline(errors.ChargeDeclined):
        pass

    assert status_and_code(LateDecline) == (402, "BANK_DECLINED")
    reused = errors.CreditReferenceReused("r1", "alice", 500)
    assert status_and_body(reused) == (
        422,
        {"code": "IDEMPOTENCY_KEY_REUSED", "message": str(reused)},
    )


def test_an_error_without_an_answer_is_named():
    with pytest.raises(LookupError, match="BankOutcomeUnknown"):
        status_and_code(errors.BankOutcomeUnknown)
