"""The transfer body shared by the gateway and the fake bank (see CONTRACT.md)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.fields import Amount, Id


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfer_id: Id
    account: Id
    amount: Amount
    direction: Literal["withdraw", "deposit"]
