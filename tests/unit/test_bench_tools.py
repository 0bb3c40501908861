"""The benchmarks' own tools without I/O: CPU sampling and the verdicts."""

import os

from bench.cpu import CpuSample, machine_ticks, process_ticks
from bench.events import verdicts


def test_cpu_sample_sees_this_process_working() -> None:
    sample = CpuSample.begin({"me": os.getpid(), "gone": 2**22 + 1})
    started = sample.started["me"]
    assert started is not None

    def counted() -> bool:  # the kernel has counted ticks for us and for the machine
        me = process_ticks(os.getpid())
        return me is not None and me > started and machine_ticks()[1] > sample.machine[1]

    while not counted():
        sum(range(10_000))
    shares = sample.end()
    assert shares["me"] > 0
    assert "gone" not in shares
    assert 0 <= shares["machine busy %"] <= 100


def row(asked: float, served: float, p99: float) -> dict:
    return {"target rate/s": asked, "achieved rate/s": served, "commit→points p99 ms": p99}


def test_verdicts_need_both_the_rate_and_the_latency() -> None:
    lines = verdicts(
        [row(500, 499, 120.0), row(500, 400, 120.0), row(500, 500, 300.0)],
        [{"events/s": 4000.0}],
    )
    assert "(the rate was not served)" in lines[1]
    assert [line.endswith(" met") and "NOT" not in line for line in lines] == [
        True,
        False,
        False,
        False,
    ]
