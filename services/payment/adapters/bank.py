"""The bank, as the payment service sees it: a port, and its adapter over the bank gateway."""

import abc

import httpx

from services.payment.domain.errors import (
    BankError,
    BankOutcomeUnknown,
    BankUnavailable,
    ChargeDeclined,
)
from shared import tracing


class BankPort(abc.ABC):
    @abc.abstractmethod
    async def withdraw(self, transfer_id: str, account: str, amount: int) -> None:
        """Take money from `account`, once per transfer_id; raises a BankProblem otherwise."""

    @abc.abstractmethod
    async def transfer_status(self, transfer_id: str) -> str | None:
        """The bank's status of a transfer ("SUCCEEDED", "DECLINED"), None if it has none."""


class GatewayBank(BankPort):
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def withdraw(self, transfer_id: str, account: str, amount: int) -> None:
        body = {
            "transfer_id": transfer_id,
            "account": account,
            "amount": amount,
            "direction": "withdraw",
        }
        answer = await self._send("POST", "/transfers", json=body)
        if answer.status_code == 201:
            return
        if answer.status_code == 402:
            raise ChargeDeclined(transfer_id)
        raise BankError(f"gateway answered {answer.status_code}: {answer.text[:200]}")

    async def transfer_status(self, transfer_id: str) -> str | None:
        answer = await self._send("GET", f"/transfers/{transfer_id}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise BankError(f"gateway answered {answer.status_code}")
        return str(answer.json()["status"])

    async def _send(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        trace = tracing.current()
        headers = {tracing.HEADER: str(trace.child())} if trace is not None else None
        try:
            answer = await self.http.request(
                method,
                path,
                headers=headers,
                **kwargs,  # type: ignore[arg-type]
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise BankUnavailable(f"the bank gateway was not reached: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise BankOutcomeUnknown(f"no answer from the bank gateway: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise BankOutcomeUnknown(f"the bank gateway connection failed: {exc!r}") from exc
        if answer.status_code == 503:
            retry_after = float(answer.headers.get("retry-after", "1"))
            raise BankUnavailable("the circuit breaker is open", retry_after)
        if answer.status_code == 504:
            raise BankOutcomeUnknown("the bank did not answer in time")
        if 400 <= answer.status_code < 500 and answer.status_code not in (402, 404):
            # The gateway refused our call (token, body): the bank was never asked.
            raise BankUnavailable(f"the gateway refused the call with {answer.status_code}")
        return answer
