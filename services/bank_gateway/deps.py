"""FastAPI dependencies of the bank gateway: what the lifespan built, typed."""

from typing import Annotated

from fastapi import Depends, Request

from services.bank_gateway.bank_client import BankClient


async def bank_client(request: Request) -> BankClient:
    bank: BankClient = request.app.state.bank
    return bank


BankDep = Annotated[BankClient, Depends(bank_client)]
