"""Runs ChargeService.reconcile in the background until stopped."""

import logging

from services.payment.service_layer.charges import ChargeService
from shared.background import BackgroundLoop
from shared.infra_errors import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)


class Reconciler(BackgroundLoop):
    task_name = "charge-reconciler"

    def __init__(
        self,
        charges: ChargeService,
        *,
        interval: float,
        min_age: float,
        give_up_after: float,
        batch: int,
    ) -> None:
        super().__init__()
        self.charges = charges
        self.interval = interval
        self.min_age = min_age
        self.give_up_after = give_up_after
        self.batch = batch

    async def _run(self) -> None:
        while not self.stopping:
            try:
                await self.charges.reconcile(self.min_age, self.give_up_after, self.batch)
            except DEPENDENCY_ERRORS as exc:
                log.warning("reconciler: a dependency failed, next round later: %r", exc)
            except Exception:  # noqa: BLE001 - a supervisor loop must outlive one bad round
                log.exception("reconciler: round failed, next round later")
            await self.pause(self.interval)
