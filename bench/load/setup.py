"""The shop before the load: wallets with money in them, made by the driver so that the
set-up is neither in Locust's statistics nor in its run time, and is made once for all the
steps of load-threshold."""

import asyncio
import uuid
from pathlib import Path

import httpx

from bench.load.settings import LoadSettings

SETUP_CONCURRENCY = 20


async def open_wallets(settings: LoadSettings, run: str) -> list[str]:
    """LOAD_WALLETS wallets topped up by LOAD_TOPUP_AMOUNT through the bank; their ids."""
    headers = {"Authorization": f"Bearer {settings.api_key()}"}
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=settings.load_host, headers=headers, timeout=30) as http:

        async def one(n: int) -> str | None:
            user = f"{run}-w{n}"
            async with gate:
                made = await http.post("/wallets", json={"user_id": user})
                charge = {"charge_id": f"{user}-seed", "amount": settings.load_topup_amount}
                topped = await http.post(f"/wallets/{user}/charges", json=charge)
            return user if made.status_code == 201 and topped.status_code == 201 else None

        made = await asyncio.gather(*(one(n) for n in range(settings.load_wallets)))
    return [user for user in made if user]


def make_shop(settings: LoadSettings, out: Path) -> Path:
    """Open the wallets and write their ids, one a line, for the locustfile."""
    run = f"load-{uuid.uuid4().hex[:8]}"
    wallets = asyncio.run(open_wallets(settings, run))
    if len(wallets) <= settings.load_hot_wallets:
        raise RuntimeError(
            f"only {len(wallets)} of {settings.load_wallets} wallets could be made at"
            f" {settings.load_host}: is the system up and LOAD_API_KEY right?"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "wallets.txt"
    path.write_text("\n".join(wallets) + "\n")
    return path
