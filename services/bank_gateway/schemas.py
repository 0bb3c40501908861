"""The transfer body shared by the gateway and the fake bank (see CONTRACT.md)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
Id = Annotated[StrictStr, Field(pattern=ID_PATTERN, min_length=1, max_length=64)]


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfer_id: Id
    account: Id
    amount: Annotated[StrictInt, Field(ge=1, le=100_000_000)]
    direction: Literal["withdraw", "deposit"]
