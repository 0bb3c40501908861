"""What `http_server_requests_seconds` costs per request: `make bench-metrics`.

Calls an ASGI app in-process (no sockets, so that nothing but the app is timed) with and
without HttpMetricsMiddleware, alternating rounds so machine noise hits both alike, and
reports the difference of the medians: the cost of timing a request and finding its
route template. A request answered before routing (a 404 on an unknown path) is measured
too, since there the middleware matches the routes itself.
"""

import argparse
import asyncio
import statistics
import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import Message, Scope

from bench.report import print_table, write_json
from shared.http import JsonResponse
from shared.metrics import install_metrics


def build_app(metered: bool) -> FastAPI:
    app = FastAPI()
    for resource in ("wallets", "payments", "charges", "accounts"):

        @app.get(f"/{resource}/{{item_id}}")
        async def get_item(item_id: str) -> JsonResponse:
            return JsonResponse({"id": item_id})

    if metered:
        install_metrics(app, CollectorRegistry())
    return app


async def call(app: FastAPI, path: str) -> None:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Message) -> None:
        return None

    await app(scope, receive, send)


async def per_request(app: FastAPI, path: str, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await call(app, path.format(i=i))
    return (time.perf_counter() - started) / count


async def main(count: int, rounds: int) -> None:
    apps = {metered: build_app(metered) for metered in (False, True)}
    for app in apps.values():
        await per_request(app, "/payments/{i}", 500)  # warm up: routes compiled, caches filled
    rows = []
    for name, path in (("routed", "/payments/p-{i}"), ("unknown path", "/nowhere/{i}")):
        samples: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for timed, app in apps.items():
                samples[timed].append(await per_request(app, path, count))
        plain, with_metrics = statistics.median(samples[False]), statistics.median(samples[True])
        rows.append(
            {
                "request": name,
                "without_us": round(plain * 1e6, 1),
                "with_us": round(with_metrics * 1e6, 1),
                "cost_us": round((with_metrics - plain) * 1e6, 1),
            }
        )
    print_table(rows, ["request", "without_us", "with_us", "cost_us"])
    written = write_json(
        "http-metrics", {"requests_per_round": count, "rounds": rounds, "rows": rows}
    )
    print(f"\nwritten to {written}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
