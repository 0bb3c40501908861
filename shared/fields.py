"""The contract's ids and amounts as pydantic and FastAPI field types, for every service."""

from typing import Annotated

from fastapi import Path
from pydantic import Field, StrictInt, StrictStr

from shared.contract import ID_MAX_LENGTH, ID_PATTERN, MAX_AMOUNT, MIN_AMOUNT

Id = Annotated[StrictStr, Field(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH)]
Amount = Annotated[StrictInt, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)]
PathId = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH)]
