"""The four services as processes on free loopback ports, started as `make up` starts them."""

import contextlib
from collections.abc import Iterator

from testkit.processes import ports, service_process
from tests.integration.events_harness import Topics, points_process


@contextlib.contextmanager
def four_services(
    points_env: dict[str, str] | None = None, topics: Topics | None = None, **env: str
) -> Iterator[dict[str, str]]:
    """Yields the base URLs by name: bank, gateway, payment, points.

    `env` adds settings for every process (database names, breaker timings, ...),
    `points_env` for the points service alone; the topics are new ones unless given.
    """
    free = ports("bank", "gateway", "payment")
    urls = {name: f"http://127.0.0.1:{port}" for name, port in free.items()}
    topics = topics or Topics.unique()
    settings = {
        **topics.env(),
        "FAKE_BANK_PORT": str(free["bank"]),
        "BANK_GATEWAY_PORT": str(free["gateway"]),
        "BANK_URL": urls["bank"],
        "PAYMENT_PORT": str(free["payment"]),
        "BANK_GATEWAY_URL": urls["gateway"],
        **env,
    }
    with (
        service_process("services.bank_gateway.fake_bank", settings, f"{urls['bank']}/health"),
        service_process("services.bank_gateway", settings, f"{urls['gateway']}/health"),
        service_process("services.payment", settings, f"{urls['payment']}/health"),
        points_process(topics, **(points_env or {})) as points_url,
    ):
        yield {**urls, "points": points_url}
