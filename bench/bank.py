"""Gateway overhead and open-circuit rejection time: `make bench-bank`.

Starts the fake bank and the gateway as processes on free loopback ports, then sends
sequential transfers straight to the bank and through the gateway (the difference is the
gateway's overhead), and finally, with the breaker forced open, measures how fast the
gateway's HTTP edge rejects. The measuring client is aiohttp's, the cheapest here, so that
its own cost hides as little as possible of what is measured.
"""

import argparse
import asyncio
import time
import uuid

import aiohttp

from bench.report import percentile, print_table, write_json
from services.bank_gateway.settings import GatewaySettings
from testkit.processes import ports, service_process


async def timed_transfers(client: aiohttp.ClientSession, count: int, expect: int) -> list[float]:
    latencies = []
    for _ in range(count):
        body = {
            "transfer_id": uuid.uuid4().hex,
            "account": "bench",
            "amount": 1,
            "direction": "withdraw",
        }
        started = time.perf_counter()
        async with client.post("/transfers", json=body) as answer:
            await answer.read()
        latencies.append(time.perf_counter() - started)
        assert answer.status == expect, answer.status
    return latencies


def row(name: str, latencies: list[float]) -> dict:
    return {
        "path": name,
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
    }


async def main(count: int) -> None:
    free = ports("bank", "gateway")
    bank_url = f"http://127.0.0.1:{free['bank']}"
    gateway_url = f"http://127.0.0.1:{free['gateway']}"
    token = GatewaySettings().bank_gateway_token.get_secret_value()
    bank_env = {"FAKE_BANK_PORT": str(free["bank"]), "LOG_LEVEL": "WARNING"}
    gateway_env = {
        "BANK_GATEWAY_PORT": str(free["gateway"]),
        "BANK_URL": bank_url,
        "LOG_LEVEL": "WARNING",
    }
    with (
        service_process("services.bank_gateway.fake_bank", bank_env, f"{bank_url}/health"),
        service_process("services.bank_gateway", gateway_env, f"{gateway_url}/health"),
    ):
        async with (
            aiohttp.ClientSession(bank_url) as bank,
            aiohttp.ClientSession(gateway_url, headers={"Authorization": f"Bearer {token}"}) as gw,
        ):
            await timed_transfers(bank, 200, 201)  # warm up both paths
            await timed_transfers(gw, 200, 201)
            direct = await timed_transfers(bank, count, 201)
            through = await timed_transfers(gw, count, 201)
            async with gw.put("/circuit-breaker", json={"state": "FORCED_OPEN"}) as forced:
                assert forced.status == 200
            rejected = await timed_transfers(gw, count, 503)
    rows = [
        row("fake bank directly", direct),
        row("through the gateway", through),
        row("gateway, circuit open (rejected)", rejected),
    ]
    overhead = {
        "p50_ms": round(rows[1]["p50_ms"] - rows[0]["p50_ms"], 3),
        "p99_ms": round(rows[1]["p99_ms"] - rows[0]["p99_ms"], 3),
    }
    rows.append({"path": "gateway overhead (difference)", "requests": "", **overhead})
    print_table(rows, ["path", "requests", "p50_ms", "p99_ms"])
    print(
        f"\nTargets: overhead p50 < 2 ms (measured {overhead['p50_ms']}),"
        f" open-circuit rejection p99 < 2 ms (measured {rows[2]['p99_ms']})"
    )
    path = write_json("bank", {"rows": rows, "overhead": overhead})
    print(f"JSON: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
