"""The dashboard's queries hold with several processes per service (PAYMENT_REPLICAS=2):
each is a total across processes, or says by `instance` that it is one line per process."""

import json
import re

from tests.dashboard import DASHBOARD, expressions

AGGREGATED = re.compile(
    r"^(?:(?:sum|max|min|avg|count)(?: by \((?P<by>[a-z_, ]*)\))? ?\("  # sum by (...) (...)
    r"|histogram_quantile\(0\.\d+, sum by \(le(?:, (?!instance)[a-z_]+)*\) \("  # all processes
    r"|[a-z_]+:[a-z_0-9:]+$)"  # a recording rule, aggregated there
)


def legends() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        t["expr"]: t.get("legendFormat", "")
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    }


def test_every_panel_query_aggregates_over_the_processes_of_a_service():
    for expr in expressions():
        assert AGGREGATED.match(expr), f"not a total over processes: {expr}"


def grouping(expr: str) -> str:
    """The labels of the outer `by (...)`, "" when there is none."""
    match = AGGREGATED.match(expr)
    return (match["by"] or "") if match else ""


def test_a_query_kept_by_instance_draws_one_line_per_process():
    per_process = [expr for expr in expressions() if "instance" in grouping(expr)]
    assert per_process, "the Processes row draws each replica and worker"
    for expr in per_process:
        assert "{{instance}}" in legends()[expr], expr


def test_the_new_issue_10_metrics_are_on_the_dashboard():
    exprs = " ".join(expressions())
    for metric in (
        "mockpay_lock_takeovers_total",
        "mockpay_idempotency_takeovers_total",
        "mockpay_session_refresh_failures_total",
        "mockpay_lock_fallbacks_total",
    ):
        assert metric in exprs, metric
