"""Runs ChargeService.reconcile in the background until stopped."""

import asyncio
import contextlib
import logging

from services.payment.service_layer.charges import ChargeService
from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self,
        charges: ChargeService,
        interval: float,
        min_age: float,
        give_up_after: float,
        batch: int,
    ) -> None:
        self.charges = charges
        self.interval = interval
        self.min_age = min_age
        self.give_up_after = give_up_after
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="charge-reconciler")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.charges.reconcile(self.min_age, self.give_up_after, self.batch)
            except DEPENDENCY_ERRORS as exc:
                log.warning("reconciler: a dependency failed, next round later: %r", exc)
            except Exception:  # noqa: BLE001 - a supervisor loop must outlive one bad round
                log.exception("reconciler: round failed, next round later")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
