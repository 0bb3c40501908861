"""What the shop's clients send and what each answer means. Plain Python: no I/O.

A load test that counts a 422 for a malformed body as an error measures the wrong thing,
and one that ignores a second debit for a retried order id misses the one bug that
matters: `judge` says, per kind of request, which statuses are right, which are errors,
and which the client answers by sending the same request again.
"""

import random
from dataclasses import dataclass
from enum import Enum

TIMEOUT = 0  # what Locust's fast client reports when no answer came in time


class Verdict(Enum):
    OK = "ok"  # the right answer
    OK_RETRY = "ok, retry"  # right, and the client sends the same request again (409 in progress)
    ERROR_RETRY = "error, retry"  # an error; a real client retries the same request
    ERROR = "error"


# Per kind of request: the statuses that are right. 402 is a business answer (no money).
EXPECTED = {
    "pay": {201, 402},
    "cancel": {200},
    "topup": {201, 202, 402},
    "wallet": {200, 201},
    "read": {200},
    "points": {200, 404},  # 404 ACCOUNT_NOT_FOUND before the first accrual
}
RETRIABLE = {TIMEOUT, 409, 502, 503, 504}


def judge(kind: str, status: int) -> Verdict:
    if status in EXPECTED.get(kind, set()):
        return Verdict.OK
    if status == 409 and kind in {"pay", "topup"}:
        return Verdict.OK_RETRY  # REQUEST_IN_PROGRESS: our own earlier attempt still runs
    if status in RETRIABLE and kind in {"pay", "topup", "cancel"}:
        return Verdict.ERROR_RETRY
    return Verdict.ERROR


@dataclass(frozen=True)
class BadRequest:
    """A request a buggy or hostile client sends; `expected` is the 4xx it must get."""

    name: str
    method: str
    path: str
    body: dict | None
    expected: int
    authorised: bool = True


def bad_requests(run: str, user_id: str) -> list[BadRequest]:
    order = f"{run}-bad-{random.getrandbits(48):x}"

    def pay(**changes: object) -> dict:
        return {"order_id": order, "user_id": user_id, "amount": 1000, **changes}

    return [
        BadRequest("bad: amount not an integer", "POST", "/payments", pay(amount=10.5), 422),
        BadRequest("bad: amount zero", "POST", "/payments", pay(amount=0), 422),
        BadRequest("bad: amount too large", "POST", "/payments", pay(amount=100_000_001), 422),
        BadRequest("bad: malformed id", "POST", "/payments", pay(user_id="no spaces!"), 422),
        BadRequest("bad: unknown wallet", "POST", "/payments", pay(user_id=f"{run}-nobody"), 404),
        BadRequest("bad: unknown payment", "GET", f"/payments/{order}", None, 404),
        BadRequest("bad: no api key", "GET", f"/wallets/{user_id}", None, 401, authorised=False),
    ]


def payment_amount() -> int:
    return random.randint(100, 20_000)


def pick_wallet(wallets: list[str], hot: int, hot_share: float) -> str:
    """A hot wallet (one of the first `hot`) with probability `hot_share`, else any other."""
    if hot and (random.random() < hot_share or len(wallets) <= hot):
        return wallets[random.randrange(min(hot, len(wallets)))]
    return wallets[random.randrange(hot, len(wallets))]
