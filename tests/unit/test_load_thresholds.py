"""The load tool's judgement: which answers are errors, when a step held, which rate held."""

import math

import pytest

from bench.load.settings import LoadSettings
from bench.load.shop import TIMEOUT, Verdict, bad_requests, judge, pick_wallet
from bench.load.thresholds import (
    Limits,
    StepStats,
    aggregate,
    breaches,
    highest_held,
    rate_steps,
)

LIMITS = Limits(p99_ms=500, max_error_rate=0.001, min_rate_share=0.9)


def stats(requests=10_000, failures=0, rate=100.0, p50=20.0, p99=300.0) -> StepStats:
    return StepStats(requests, failures, rate, p50, p99)


def test_a_step_within_every_limit_holds():
    assert breaches(stats(), LIMITS, target_rate=100) == []


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (stats(p99=501), "p99 501 ms > 500 ms"),
        (stats(failures=11), "error rate 0.1100% > 0.1000%"),
        (stats(rate=89), "served 89.0/s < 90% of 100/s"),
        (stats(p99=math.nan), "p99 nan ms > 500 ms"),
        (stats(requests=0), "no request was made"),
    ],
)
def test_a_step_breaks_on_p99_errors_served_rate_or_no_traffic(step, why):
    assert breaches(step, LIMITS, target_rate=100) == [why]


def test_error_rate_exactly_at_the_limit_still_holds():
    assert breaches(stats(failures=10), LIMITS, target_rate=100) == []


def test_highest_held_is_the_last_rate_before_the_first_break():
    results = [(100, []), (150, []), (200, ["p99"]), (250, [])]
    assert highest_held(results) == 150
    assert highest_held([(100, ["errors"])]) is None


def test_rates_step_up_from_start_to_the_maximum():
    assert rate_steps(100, 50, 300) == [100, 150, 200, 250, 300]
    with pytest.raises(ValueError):
        rate_steps(100, 0, 300)


def test_aggregate_merges_entries_and_takes_percentiles_as_locust_does():
    entries = [
        {"num_requests": 98, "num_failures": 1, "start_time": 100.0,
         "last_request_timestamp": 110.0, "response_times": {"10": 98}},
        {"num_requests": 2, "num_failures": 0, "start_time": 101.0,
         "last_request_timestamp": 105.0, "response_times": {"900": 1, "2000": 1}},
    ]  # fmt: skip
    merged = aggregate(entries)
    assert (merged.requests, merged.failures, merged.rate) == (100, 1, 10.0)
    assert (merged.p50_ms, merged.p99_ms) == (10.0, 2000.0)  # Locust: top 1% of 100 is the max


@pytest.mark.parametrize(
    ("kind", "status", "verdict"),
    [
        ("pay", 201, Verdict.OK),
        ("pay", 402, Verdict.OK),  # insufficient balance is an answer, not an error
        ("pay", 409, Verdict.OK_RETRY),  # our own first attempt still runs
        ("pay", 503, Verdict.ERROR_RETRY),
        ("pay", TIMEOUT, Verdict.ERROR_RETRY),
        ("pay", 500, Verdict.ERROR),
        ("points", 404, Verdict.OK),
        ("read", 404, Verdict.ERROR),
        ("read", 503, Verdict.ERROR),  # a read is not retried: it just failed
    ],
)
def test_each_answer_is_judged_by_the_kind_of_request(kind, status, verdict):
    assert judge(kind, status) is verdict


def test_every_bad_request_expects_a_4xx():
    assert {bad.expected for bad in bad_requests("run", "alice")} <= {401, 404, 422}


def test_hot_wallets_get_their_share_of_payments():
    wallets = [f"w{i}" for i in range(100)]
    picks = [pick_wallet(wallets, hot=3, hot_share=0.2) for _ in range(20_000)]
    hot = sum(1 for w in picks if w in {"w0", "w1", "w2"}) / len(picks)
    assert 0.17 < hot < 0.23


def test_the_api_key_defaults_to_the_first_configured_key_without_its_scopes():
    settings = LoadSettings(payment_api_keys="k1:read+pay,k2", load_api_key=None)
    assert settings.api_key() == "k1"
    assert LoadSettings(load_api_key="mine").api_key() == "mine"
