"""Did a load step hold? From Locust's statistics; plain Python apart from reading them."""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StepStats:
    requests: int
    failures: int
    rate: float  # served requests per second
    p50_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_rate": round(self.error_rate, 5)}


@dataclass(frozen=True)
class Limits:
    p99_ms: float
    max_error_rate: float
    min_rate_share: float  # of the target rate; served less means the system did not keep up


def read_stats(stats_json: Path) -> StepStats:
    """From Locust's `--json-file`, written at shutdown with every request (its CSVs are
    written once a second and miss the last moments of the run)."""
    return aggregate(json.loads(stats_json.read_text()))


def aggregate(entries: list[dict[str, Any]]) -> StepStats:
    """All entries as one, percentiles computed as Locust computes them."""
    requests = sum(e["num_requests"] for e in entries)
    times: Counter[int] = Counter()
    for e in entries:
        times.update({int(ms): count for ms, count in e["response_times"].items()})
    starts = [e["start_time"] for e in entries]
    ends = [e["last_request_timestamp"] for e in entries if e["last_request_timestamp"]]
    seconds = max(ends) - min(starts) if starts and ends else 0.0
    return StepStats(
        requests=requests,
        failures=sum(e["num_failures"] for e in entries),
        rate=requests / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(times, requests, 0.50),
        p99_ms=percentile(times, requests, 0.99),
    )


def percentile(times: Counter[int], requests: int, share: float) -> float:
    """Locust's calculate_response_time_percentile: the time `share` of requests beat."""
    within = int(requests * share)
    seen = 0
    for ms in sorted(times, reverse=True):
        seen += times[ms]
        if requests - seen <= within:
            return float(ms)
    return float("nan")


def breaches(stats: StepStats, limits: Limits, target_rate: float | None) -> list[str]:
    """Why the run did not hold; empty when it held."""
    reasons = []
    if stats.requests == 0:
        return ["no request was made"]
    if not stats.p99_ms <= limits.p99_ms:  # NaN breaks too
        reasons.append(f"p99 {stats.p99_ms:.0f} ms > {limits.p99_ms:.0f} ms")
    if stats.error_rate > limits.max_error_rate:
        reasons.append(f"error rate {stats.error_rate:.4%} > {limits.max_error_rate:.4%}")
    if target_rate and stats.rate < limits.min_rate_share * target_rate:
        reasons.append(
            f"served {stats.rate:.1f}/s < {limits.min_rate_share:.0%} of {target_rate:.0f}/s"
        )
    return reasons


def rate_steps(start: float, step: float, maximum: float) -> list[float]:
    if start <= 0 or step <= 0:
        raise ValueError("start and step must be positive")
    steps, rate = [], start
    while rate <= maximum:
        steps.append(rate)
        rate += step
    return steps


def highest_held(results: Sequence[tuple[float, list[str]]]) -> float | None:
    """The last rate that held before the first that did not (steps in rising order)."""
    held = None
    for rate, reasons in results:
        if reasons:
            break
        held = rate
    return held
