"""The circuit breaker's state machine, driven by a fake clock."""

import pytest

from shared.breaker import BreakerConfig, CallNotPermitted, CircuitBreaker, State


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock: FakeClock, **config: object) -> CircuitBreaker:
    return CircuitBreaker("bank", BreakerConfig(**config), clock)


def calls(cb: CircuitBreaker, outcomes: str, seconds: float = 0.01) -> None:
    """'s' success, 'f' failure, 'i' ignored (a decline)."""
    for outcome in outcomes:
        cb.acquire()
        if outcome == "s":
            cb.record_success(seconds)
        elif outcome == "f":
            cb.record_failure(seconds)
        else:
            cb.record_ignored()


def test_opens_at_exactly_40_percent_failures_over_the_window(clock):
    cb = breaker(clock)
    calls(cb, "sssff")
    assert cb.state is State.OPEN
    assert cb.metrics()["failure_rate"] == 40.0


def test_stays_closed_just_below_40_percent(clock):
    cb = breaker(clock, window_size=10, minimum_calls=10)
    calls(cb, "sssssssfff")  # 30 %
    assert cb.state is State.CLOSED


def test_does_not_judge_before_the_minimum_number_of_calls(clock):
    cb = breaker(clock)
    calls(cb, "ffff")
    assert cb.state is State.CLOSED and cb.metrics()["failure_rate"] == -1.0
    calls(cb, "f")
    assert cb.state is State.OPEN


def test_window_slides_so_old_failures_age_out(clock):
    cb = breaker(clock)
    calls(cb, "fssss")  # 20 %
    calls(cb, "s")  # the failure slides out
    assert cb.metrics()["failed_calls"] == 0 and cb.state is State.CLOSED


def test_slow_calls_are_counted_with_their_own_threshold(clock):
    cb = breaker(clock, slow_call_seconds=2.0, slow_call_rate_threshold=60.0)
    calls(cb, "ss", seconds=0.5)
    calls(cb, "sss", seconds=2.5)  # successes, but slow: 60 %
    assert cb.state is State.OPEN and cb.metrics()["slow_call_rate"] == 60.0


def test_open_refuses_calls_and_counts_them(clock):
    cb = breaker(clock)
    calls(cb, "fffff")
    with pytest.raises(CallNotPermitted) as refused:
        cb.acquire()
    assert refused.value.retry_after == pytest.approx(10.0)
    clock.now += 4
    with pytest.raises(CallNotPermitted) as refused:
        cb.acquire()
    assert refused.value.retry_after == pytest.approx(6.0)
    assert cb.metrics()["not_permitted_calls"] == 2


def test_half_open_admits_exactly_three_trial_calls_then_closes(clock):
    cb = breaker(clock)
    calls(cb, "fffff")
    clock.now += 10
    for _ in range(3):
        cb.acquire()
    assert cb.state is State.HALF_OPEN
    with pytest.raises(CallNotPermitted):
        cb.acquire()
    cb.record_success(0.01)
    cb.record_success(0.01)
    assert cb.state is State.HALF_OPEN
    cb.record_failure(0.01)  # 1 of 3 = 33 %, below 40 %
    assert cb.state is State.CLOSED
    assert cb.metrics()["buffered_calls"] == 0


def test_half_open_reopens_when_the_trials_fail(clock):
    cb = breaker(clock)
    calls(cb, "fffff")
    clock.now += 10
    calls(cb, "sff")
    assert cb.state is State.OPEN
    with pytest.raises(CallNotPermitted):
        cb.acquire()


def test_automatic_transition_shows_half_open_without_a_call(clock):
    cb = breaker(clock, automatic_transition=True)
    calls(cb, "fffff")
    clock.now += 9.9
    assert cb.state is State.OPEN
    clock.now += 0.1
    assert cb.state is State.HALF_OPEN


def test_declines_count_neither_way_and_give_back_half_open_permits(clock):
    cb = breaker(clock)
    calls(cb, "iiiiiiiiii")
    assert cb.metrics()["buffered_calls"] == 0 and cb.state is State.CLOSED
    calls(cb, "fffff")
    clock.now += 10
    calls(cb, "iiii")  # more than three declines: each gave its permit back
    calls(cb, "sss")
    assert cb.state is State.CLOSED


def test_forced_open_and_disabled_are_left_only_by_an_operator(clock):
    cb = breaker(clock)
    cb.force_open()
    clock.now += 3600
    with pytest.raises(CallNotPermitted):
        cb.acquire()
    cb.disable()
    calls(cb, "ffffffffff")
    assert cb.state is State.DISABLED and cb.metrics()["buffered_calls"] == 0
    cb.reset()
    assert cb.state is State.CLOSED
    assert [t[1] for t in cb.transitions] == [State.FORCED_OPEN, State.DISABLED, State.CLOSED]
