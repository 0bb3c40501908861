"""A circuit breaker with Resilience4j's semantics.

aiobreaker (the design card's choice) opens after N *consecutive* failures; it has no
failure-rate window, no slow-call rate and no limit on half-open trial calls, and its
extension points (listeners, storage) cannot add them. This is the focused replacement.

- CLOSED: outcomes go into a count-based sliding window (`window_size` calls). Once it
  holds `minimum_calls`, the breaker opens when the failure rate or the slow-call rate
  reaches its threshold (in percent).
- OPEN: calls are refused (CallNotPermitted) for `wait_in_open_seconds`; then the breaker is
  HALF_OPEN, on the next call or, with `automatic_transition`, as soon as anyone looks.
- HALF_OPEN: exactly `half_open_calls` trial calls are let through; when all are
  recorded their rates decide: CLOSED (a fresh window) or OPEN again.
- FORCED_OPEN refuses everything, DISABLED lets everything through unrecorded; both are
  operators' states, left only by `reset()` or another forced transition.
- Ignored outcomes (a bank's business "no") count neither way; in HALF_OPEN they give
  their trial permit back.

Time comes from `clock` (seconds, monotonic), so tests drive it without sleeping.
Every recorded call is also told to `call_listeners` (kind and duration), as Resilience4j's
event publisher does, so metrics observe calls without a second bookkeeping.
"""

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)


class State(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"


CallKind = Literal["successful", "failed", "ignored"]


class BreakerConfig(BaseModel):
    """The breaker's settings; a service nests it in its settings (`BREAKER_*`)."""

    model_config = ConfigDict(frozen=True)

    window_size: int = 5
    minimum_calls: int = 5
    failure_rate_threshold: float = 40.0
    slow_call_rate_threshold: float = 100.0
    slow_call_seconds: float = 2.0
    wait_in_open_seconds: float = 10.0
    half_open_calls: int = 3
    automatic_transition: bool = False


class CallNotPermitted(Exception):
    """The breaker refused the call; `retry_after` seconds until it may let calls through."""

    def __init__(self, name: str, state: State, retry_after: float) -> None:
        super().__init__(f"circuit breaker {name!r} is {state.value}")
        self.state = state
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    failed: bool
    slow: bool


class _Window:
    def __init__(self, size: int, minimum: int) -> None:
        self.outcomes: deque[Outcome] = deque(maxlen=size)
        self.minimum = minimum

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    @property
    def full_enough(self) -> bool:
        return len(self.outcomes) >= self.minimum

    def rate(self, attribute: str) -> float:
        """Percentage of recorded calls with `attribute`; -1 below the minimum number of calls."""
        if not self.full_enough:
            return -1.0
        return 100.0 * sum(getattr(o, attribute) for o in self.outcomes) / len(self.outcomes)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.clock = clock
        self._state = State.CLOSED
        self._window = self._closed_window()
        self._opened_at = 0.0
        self._half_open_permits = 0
        self.not_permitted_calls = 0
        self.transitions: list[tuple[State, State]] = []
        self.call_listeners: list[Callable[[CallKind, float], None]] = []

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> State:
        if self.config.automatic_transition:
            self._half_open_if_waited()
        return self._state

    def _closed_window(self) -> _Window:
        return _Window(self.config.window_size, self.config.minimum_calls)

    def _transition(self, to: State) -> None:
        before = self._state
        if before is to:
            return
        self._state = to
        self.transitions.append((before, to))
        if to is State.OPEN:
            self._opened_at = self.clock()
        if to is State.HALF_OPEN:
            self._window = _Window(self.config.half_open_calls, self.config.half_open_calls)
            self._half_open_permits = self.config.half_open_calls
        elif to in (State.CLOSED, State.DISABLED, State.FORCED_OPEN):
            self._window = self._closed_window()
        log.warning("circuit breaker %r: %s -> %s", self.name, before.value, to.value)

    def _half_open_if_waited(self) -> None:
        if (
            self._state is State.OPEN
            and self.clock() >= self._opened_at + self.config.wait_in_open_seconds
        ):
            self._transition(State.HALF_OPEN)

    def retry_after(self) -> float:
        if self._state is State.OPEN:
            return max(0.0, self._opened_at + self.config.wait_in_open_seconds - self.clock())
        return self.config.wait_in_open_seconds if self._state is State.FORCED_OPEN else 1.0

    # ---------------------------------------------------------------- calls

    def acquire(self) -> None:
        """Ask to make a call; raises CallNotPermitted when the breaker refuses it."""
        self._half_open_if_waited()
        state = self._state
        if state in (State.CLOSED, State.DISABLED):
            return
        if state is State.HALF_OPEN and self._half_open_permits > 0:
            self._half_open_permits -= 1
            return
        self.not_permitted_calls += 1
        raise CallNotPermitted(self.name, state, self.retry_after())

    def refuse_if_open(self) -> None:
        """Raise CallNotPermitted if the breaker refuses every call now (OPEN, FORCED_OPEN).

        Unlike acquire() it never takes a half-open trial permit, so an HTTP edge can call
        it before it has even read the request.
        """
        self._half_open_if_waited()
        if self._state in (State.OPEN, State.FORCED_OPEN):
            self.not_permitted_calls += 1
            raise CallNotPermitted(self.name, self._state, self.retry_after())

    def record_success(self, seconds: float) -> None:
        self._notify("successful", seconds)
        self._record(Outcome(failed=False, slow=seconds > self.config.slow_call_seconds))

    def record_failure(self, seconds: float) -> None:
        self._notify("failed", seconds)
        self._record(Outcome(failed=True, slow=seconds > self.config.slow_call_seconds))

    def record_ignored(self, seconds: float = 0.0) -> None:
        """A call whose outcome says nothing about the callee's health."""
        self._notify("ignored", seconds)
        if self._state is State.HALF_OPEN:
            self._half_open_permits += 1

    def _notify(self, kind: CallKind, seconds: float) -> None:
        for listener in self.call_listeners:
            listener(kind, seconds)

    def _record(self, outcome: Outcome) -> None:
        if self._state not in (State.CLOSED, State.HALF_OPEN):
            return  # DISABLED records nothing; a late answer after OPEN changes nothing
        self._window.record(outcome)
        if not self._window.full_enough:
            return
        tripped = (
            self._window.rate("failed") >= self.config.failure_rate_threshold
            or self._window.rate("slow") >= self.config.slow_call_rate_threshold
        )
        if tripped:
            self._transition(State.OPEN)
        elif self._state is State.HALF_OPEN:
            self._transition(State.CLOSED)

    # ---------------------------------------------------------------- operators

    def force_open(self) -> None:
        self._transition(State.FORCED_OPEN)

    def disable(self) -> None:
        self._transition(State.DISABLED)

    def reset(self) -> None:
        """Back to CLOSED with an empty window."""
        self._transition(State.CLOSED)
        self._window = self._closed_window()

    def figures(self) -> "BreakerFigures":
        state = self.state
        outcomes = self._window.outcomes
        return BreakerFigures(
            state=state,
            failure_rate=round(self._window.rate("failed"), 2),
            slow_call_rate=round(self._window.rate("slow"), 2),
            buffered_calls=len(outcomes),
            failed_calls=sum(o.failed for o in outcomes),
            slow_calls=sum(o.slow for o in outcomes),
            not_permitted_calls=self.not_permitted_calls,
        )

    def metrics(self) -> dict[str, object]:
        return {**asdict(self.figures()), "state": self.state.value}


@dataclass(frozen=True)
class BreakerFigures:
    """The breaker's state and its window's figures at one moment."""

    state: State
    failure_rate: float  # percent, -1 below the minimum number of calls
    slow_call_rate: float
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    not_permitted_calls: int
