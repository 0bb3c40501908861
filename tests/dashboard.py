"""The dashboard's panel expressions and the metric names they use, for tests."""

import json
import re

from testkit.processes import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "mockpay.json"
# Every metric this project exposes or records starts with one of these.
METRIC = re.compile(
    r"\b((?:http_server_requests|resilience4j_circuitbreaker|mockpay|kafka_consumergroup"
    r"|process)_[a-z0-9_]+|payments:[a-z0-9_:]+)"
)
SUFFIXES = ("_bucket", "_count", "_sum")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def metric_names() -> set[str]:
    return {name for expr in expressions() for name in METRIC.findall(expr)}
