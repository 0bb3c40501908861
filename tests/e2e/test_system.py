"""The four services as processes, as `make up` runs them, talked to over HTTP."""

import json
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from bench.dashboard import DASHBOARD, panels, render
from services.bank_gateway.settings import FakeBankSettings, GatewaySettings
from services.payment.settings import PaymentSettings
from services.points.dlt import read_all
from shared.tracing import TraceParent
from testkit.waiting import eventually, eventually_blocking
from tests.dashboard import SUFFIXES, metric_names
from tests.e2e.four_services import four_services, instances, points_logs
from tests.integration.events_harness import BOOTSTRAP, Topics
from tests.monitoring import (
    ALERTS,
    port,
    processes,
    prometheus,
    query,
    scrape_settings,
    wait_for_targets,
)
from tests.scrape import Sample, named, parse, value

pytestmark = pytest.mark.e2e


TOPICS = Topics.unique()


@pytest.fixture(scope="module")
def system():
    with four_services(topics=TOPICS) as urls:
        yield urls


def test_every_service_answers_health(system):
    for url in system.values():
        assert httpx.get(f"{url}/health").status_code == 200


def test_a_user_tops_up_pays_and_earns_points(system):
    key = PaymentSettings().api_keys()[0]
    assert GatewaySettings().bank_gateway_token.get_secret_value()
    client = httpx.Client(base_url=system["payment"], headers={"Authorization": f"Bearer {key}"})
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    assert client.post("/wallets", json={"user_id": user}).status_code == 201
    charged = client.post(
        f"/wallets/{user}/charges", json={"charge_id": f"c-{user}", "amount": 50_000}
    )
    assert charged.status_code == 201 and charged.json()["balance_after"] == 50_000
    paid = client.post(
        "/payments", json={"order_id": f"o-{user}", "user_id": user, "amount": 20_000}
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 30_000
    assert client.get(f"/wallets/{user}").json()["balance"] == 30_000

    def points_earned() -> bool:
        answer = client.get(f"{system['points']}/points/{user}", timeout=5)
        return answer.status_code == 200 and answer.json()["balance"] == 200

    eventually_blocking(
        points_earned, timeout=60, interval=0.2, message="no points for the payment"
    )


# ---------------------------------------------------------------- metrics (CONTRACT.md)

HTTP_LABELS = {"method", "uri", "status", "outcome", "le"}
EVERY_SERVICE = {"process_cpu_seconds_total", "process_resident_memory_bytes"}
CONTRACT_METRICS = {
    "payment": {
        "mockpay_payments_total": {"outcome"},
        "mockpay_payments_amount_total": set(),
        "mockpay_lock_wait_seconds_bucket": {"strategy", "le"},
        "mockpay_lock_held_seconds_bucket": {"strategy", "le"},
        "mockpay_lock_timeouts_total": set(),
        "mockpay_lock_lease_lost_total": set(),
        "mockpay_lock_fallbacks_total": set(),
        "mockpay_outbox_unpublished": set(),
        "mockpay_outbox_oldest_unpublished_seconds": set(),
        "mockpay_outbox_published_total": set(),
        "mockpay_charges_pending": set(),
    },
    "gateway": {
        "resilience4j_circuitbreaker_state": {"name", "state"},
        "resilience4j_circuitbreaker_failure_rate": {"name"},
        "resilience4j_circuitbreaker_slow_call_rate": {"name"},
        "resilience4j_circuitbreaker_calls_seconds_bucket": {"name", "kind", "le"},
        "resilience4j_circuitbreaker_not_permitted_calls_total": {"name", "kind"},
        "resilience4j_circuitbreaker_buffered_calls": {"name", "kind"},
    },
    "points": {
        "kafka_consumergroup_lag": {"consumergroup", "topic", "partition"},
        "mockpay_points_events_total": {"outcome"},
        "mockpay_points_batch_size_bucket": {"le"},
        "mockpay_dead_letters": set(),
    },
    "bank": {},
}
LABEL_VALUES = {
    ("mockpay_payments_total", "outcome"): {
        "completed", "insufficient_balance", "replayed", "in_progress", "key_reused",
        "unavailable", "cancelled",
    },
    ("mockpay_points_events_total", "outcome"): {
        "applied", "duplicate", "retried", "dead_lettered", "ignored",
    },
    ("resilience4j_circuitbreaker_state", "state"): {
        "closed", "open", "half_open", "forced_open", "disabled", "metrics_only",
    },
    ("resilience4j_circuitbreaker_calls_seconds_bucket", "kind"): {
        "successful", "failed", "ignored",
    },
    ("resilience4j_circuitbreaker_buffered_calls", "kind"): {"successful", "failed"},
}  # fmt: skip


def scrape(url: str) -> list[Sample]:
    answer = httpx.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200
    return parse(answer.text)


def pay_once(url: str) -> None:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key()}"})
    user = f"m-{uuid.uuid4().hex[:10]}"
    client.post("/wallets", json={"user_id": user})
    client.post(f"/wallets/{user}/charges", json={"charge_id": f"c-{user}", "amount": 100})
    paid = client.post("/payments", json={"order_id": f"o-{user}", "user_id": user, "amount": 10})
    assert paid.status_code == 201


def api_key() -> str:
    return PaymentSettings().api_keys()[0]


def test_every_service_exposes_the_contracts_metrics_with_their_labels(system):
    pay_once(system["payment"])

    def all_exposed() -> bool:
        return all(
            set(metrics) <= {s.name for s in scrape(system[service])}
            for service, metrics in CONTRACT_METRICS.items()
        )

    eventually_blocking(all_exposed, timeout=30, interval=0.5, message="metrics missing")
    for service, metrics in CONTRACT_METRICS.items():
        samples = scrape(system[service])
        names = {s.name for s in samples}
        assert names >= EVERY_SERVICE | {"http_server_requests_seconds_bucket"}, service
        for sample in named(samples, "http_server_requests_seconds_bucket"):
            assert set(sample.labels) == HTTP_LABELS
        for metric, labels in metrics.items():
            for sample in named(samples, metric):
                assert set(sample.labels) == labels, (service, metric)
        for (metric, label), expected in LABEL_VALUES.items():
            if metric in metrics:
                assert {s.labels[label] for s in named(samples, metric)} == expected


def test_the_gateways_open_circuit_answers_are_counted(system):
    token = GatewaySettings().bank_gateway_token.get_secret_value()
    gateway = httpx.Client(base_url=system["gateway"], headers={"Authorization": f"Bearer {token}"})
    transfer = {"transfer_id": "t-open", "account": "a", "amount": 1, "direction": "withdraw"}
    gateway.put("/circuit-breaker", json={"state": "FORCED_OPEN"})
    try:
        assert gateway.post("/transfers", json=transfer).status_code == 503
        samples = scrape(system["gateway"])
    finally:
        gateway.put("/circuit-breaker", json={"state": "CLOSED"})
    assert value(samples, "resilience4j_circuitbreaker_state", state="forced_open") == 1
    assert value(samples, "resilience4j_circuitbreaker_not_permitted_calls_total") >= 1
    counted = value(
        samples, "http_server_requests_seconds_count", uri="/transfers", status="503", method="POST"
    )
    assert counted >= 1


def test_a_thousand_distinct_paths_leave_a_bounded_uri_label_set(system):
    with httpx.Client(base_url=system["payment"]) as client:
        for i in range(500):
            assert client.get(f"/wallets/user-{i}").status_code == 401
            assert client.get(f"/no/such/path/{i}").status_code == 404
    uris = {
        s.labels["uri"]
        for replica in instances(system, "payment")  # HAProxy spreads the requests
        for s in named(scrape(replica), "http_server_requests_seconds_count")
    }
    assert "UNKNOWN" in uris and "/wallets/{user_id}" in uris
    assert not any("user-" in uri or "/no/such" in uri for uri in uris)
    assert len(uris) < 20


# ---------------------------------------------------------------- Prometheus (make monitor)


def test_prometheus_scrapes_every_process_and_sees_the_breaker_open(system, tmp_path):
    ports = {
        "BANK_GATEWAY_PORT": port(system["gateway"]),
        "FAKE_BANK_PORT": port(system["bank"]),
        **scrape_settings(system, "payment"),
        **scrape_settings(system, "points"),
    }
    # One target per process: each replica and worker under make test-ha, never HAProxy.
    expected = {
        (job, instance): "up"
        for job in ("payment", "points")
        for instance in processes(system, job)
    } | {(job, job): "up" for job in ("bank-gateway", "fake-bank", "prometheus")}
    with prometheus(tmp_path, **ports) as (url, _):
        wait_for_targets(url, expected)
        rules = httpx.get(f"{url}/api/v1/rules", params={"type": "alert"}, timeout=5).json()
        assert {r["name"] for g in rules["data"]["groups"] for r in g["rules"]} == set(ALERTS)

        token = GatewaySettings().bank_gateway_token.get_secret_value()
        auth = {"Authorization": f"Bearer {token}"}
        admin_token = FakeBankSettings().fake_bank_admin_token.get_secret_value()
        admin = {"Authorization": f"Bearer {admin_token}"}
        faulty = httpx.put(f"{system['bank']}/faults", json={"error_rate": 1.0}, headers=admin)
        assert faulty.status_code == 200
        try:
            for i in range(5):
                transfer = {
                    "transfer_id": f"t-{i}",
                    "account": "a",
                    "amount": 1,
                    "direction": "withdraw",
                }
                httpx.post(f"{system['gateway']}/transfers", json=transfer, headers=auth)

            def open_in_prometheus() -> bool:
                expr = 'resilience4j_circuitbreaker_state{name="bank", state="open"} == 1'
                return bool(query(url, expr))

            eventually_blocking(open_in_prometheus, timeout=15, interval=0.5, message="not open")

            def alert_pending() -> bool:
                return bool(query(url, 'ALERTS{alertname="MockPayBreakerOpen"}'))

            eventually_blocking(alert_pending, timeout=60, interval=0.5, message="no alert")
            drawn = render(url, minutes=2, out=tmp_path)
            assert len(drawn) == len(panels(json.loads(DASHBOARD.read_text()))) + 1
            assert all(path.stat().st_size > 1000 for path in drawn)
        finally:
            httpx.put(f"{system['bank']}/faults", json={"error_rate": 0.0}, headers=admin)
            httpx.put(
                f"{system['gateway']}/circuit-breaker", json={"state": "CLOSED"}, headers=auth
            )


# ---------------------------------------------------------------- one trace (traceparent)


def points_log_lines(trace_id: str) -> list[dict]:
    """JSON lines of this test run's points service logs that carry `trace_id`."""
    lines = []
    for path in points_logs():
        for line in path.read_text(errors="replace").splitlines():
            if trace_id in line and line.startswith("{"):
                lines.append(orjson.loads(line))
    return lines


async def test_one_trace_id_follows_a_payment_from_http_to_points_and_the_dlt(system):
    sent = TraceParent.new()
    headers = {"Authorization": f"Bearer {api_key()}", "traceparent": str(sent)}
    user = f"t-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=system["payment"], headers=headers) as client:
        await client.post("/wallets", json={"user_id": user})
        await client.post(
            f"/wallets/{user}/charges", json={"charge_id": f"c-{user}", "amount": 500}
        )
        paid = await client.post(
            "/payments", json={"order_id": f"o-{user}", "user_id": user, "amount": 100}
        )
    answered = TraceParent.parse(paid.headers.get("traceparent"))
    assert answered is not None and answered.trace_id == sent.trace_id

    async def points_logged() -> bool:
        return any(
            line.get("order_id") == f"o-{user}" and line.get("event_id")
            for line in points_log_lines(sent.trace_id)
        )

    await eventually(points_logged, timeout=60, message="no points log line with the trace id")

    # The event as the relay sent it carries the trace; a poison copy of it, dead-lettered
    # by the points service, keeps it on the DLT.
    events = await read_all(BOOTSTRAP, TOPICS.events)
    [event] = [r for r in events if r.key == user.encode()]
    assert trace_of(event.headers) == sent.trace_id
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await producer.start()
    try:
        await producer.send_and_wait(
            TOPICS.events, b"{not json", key=event.key, headers=list(event.headers)
        )
    finally:
        await producer.stop()

    async def letters() -> list:
        records = await read_all(BOOTSTRAP, TOPICS.dead_letters)
        return [r for r in records if r.key == user.encode()]

    async def dead_lettered() -> bool:
        return bool(await letters())

    await eventually(dead_lettered, timeout=60, message="the poison copy was not dead-lettered")
    [letter] = await letters()
    assert trace_of(letter.headers) == sent.trace_id


def trace_of(headers: list[tuple[str, bytes]]) -> str | None:
    trace = TraceParent.parse(dict(headers).get("traceparent"))
    return trace.trace_id if trace is not None else None


# ---------------------------------------------------------------- dashboard (deploy/grafana)


def test_every_metric_the_dashboard_reads_is_exposed_by_a_running_service(system):
    pay_once(system["payment"])

    def exposed() -> set[str]:
        names = set()
        for service in ("payment", "gateway", "points", "bank"):
            for sample in scrape(system[service]):
                names.add(sample.name)
                names.update(sample.name.removesuffix(s) for s in SUFFIXES)
        return names

    wanted = {name for name in metric_names() if ":" not in name}
    eventually_blocking(
        lambda: wanted <= exposed(), timeout=30, interval=0.5, message="metrics missing"
    )
    assert wanted <= exposed(), wanted - exposed()
