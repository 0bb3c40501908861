"""FastAPI dependencies of the points API: what the lifespan built, typed."""

from typing import Annotated

from fastapi import Depends, Request

from services.points.processor import EventProcessor
from services.points.store import PointsStore


async def points_store(request: Request) -> PointsStore:
    store: PointsStore = request.app.state.store
    return store


async def event_processor(request: Request) -> EventProcessor:
    processor: EventProcessor = request.app.state.processor
    return processor


StoreDep = Annotated[PointsStore, Depends(points_store)]
ProcessorDep = Annotated[EventProcessor, Depends(event_processor)]
