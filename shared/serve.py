"""Serve a service's FastAPI app with uvicorn: the body of every `python -m services.X`."""

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.logs import configure_logging
from shared.settings import BaseServiceSettings

S = TypeVar("S", bound=BaseServiceSettings)


def serve(settings: S, create_app: Callable[[S], FastAPI], host: str, port: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's own lines go through our format too
    )
