"""The breaker's figures under Resilience4j's Micrometer names (CONTRACT.md, Metrics).

State, rates, buffered and not-permitted calls are read from the breaker at scrape time,
never counted a second time; call durations come from its call listeners.
"""

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.breaker import CallKind, CircuitBreaker
from shared.metrics import LATENCY_BUCKETS

# Resilience4j's state names; METRICS_ONLY exists there and is never ours.
STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")


class BreakerCollector(Collector):
    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    def collect(self) -> Iterator[Metric]:
        name = self.breaker.name
        figures = self.breaker.figures()
        state = GaugeMetricFamily(
            "resilience4j_circuitbreaker_state",
            "1 for the breaker's current state, 0 for the others",
            labels=("name", "state"),
        )
        for each in STATES:
            state.add_metric((name, each), 1.0 if each == figures.state.value.lower() else 0.0)
        yield state
        yield _gauge("failure_rate", "Failure rate in percent", name, figures.failure_rate)
        yield _gauge("slow_call_rate", "Slow-call rate in percent", name, figures.slow_call_rate)
        buffered = GaugeMetricFamily(
            "resilience4j_circuitbreaker_buffered_calls",
            "Calls in the breaker's sliding window, by kind",
            labels=("name", "kind"),
        )
        buffered.add_metric((name, "failed"), figures.failed_calls)
        buffered.add_metric((name, "successful"), figures.buffered_calls - figures.failed_calls)
        yield buffered
        refused = CounterMetricFamily(
            "resilience4j_circuitbreaker_not_permitted_calls",
            "Calls the breaker refused",
            labels=("name", "kind"),
        )
        refused.add_metric((name, "not_permitted"), figures.not_permitted_calls)
        yield refused


def _gauge(figure: str, text: str, name: str, value: float) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        f"resilience4j_circuitbreaker_{figure}",
        f"{text}, -1 below the minimum number of calls",
        labels=("name",),
    )
    gauge.add_metric((name,), value)
    return gauge


def register_breaker(breaker: CircuitBreaker, registry: CollectorRegistry) -> None:
    """Expose `breaker` in `registry`: its state as collected, its calls as they are made."""
    registry.register(BreakerCollector(breaker))
    calls = Histogram(
        "resilience4j_circuitbreaker_calls_seconds",
        "Calls through the breaker, by kind",
        ("name", "kind"),
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    kinds = ("successful", "failed", "ignored")
    children = {kind: calls.labels(breaker.name, kind) for kind in kinds}

    def observe(kind: CallKind, seconds: float) -> None:
        children[kind].observe(seconds)

    breaker.call_listeners.append(observe)
