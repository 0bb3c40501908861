"""`make load-threshold`: raise the rate step by step until p99, the error rate or the
served rate breaks its limit; print the highest rate that held, with p50/p99 and the CPU of
each local process at every step; a chart and JSON next to the steps' HTML reports.

Each step is a Locust run of its own (LOAD_THRESHOLD_STEP_SECONDS long) over the same
wallets, with rate / LOAD_THRESHOLD_USER_RATE users, so every step's statistics are its own.
"""

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import CpuSample
from bench.load import locust_process
from bench.load.__main__ import limits
from bench.load.chart import draw
from bench.load.locust_process import LocustRun
from bench.load.outcome import audit_after, results_dir
from bench.load.processes import SystemPorts, listening_pids, wanted_ports
from bench.load.settings import LoadSettings
from bench.load.setup import make_shop
from bench.load.thresholds import breaches, highest_held, rate_steps
from bench.report import print_table

COLUMNS = ["target/s", "users", "served/s", "errors", "p50 ms", "p99 ms", "held", "CPU % of a core"]


def step_run(settings: LoadSettings, rate: float) -> LocustRun:
    users = max(1, math.ceil(rate / settings.load_threshold_user_rate))
    spawn = max(settings.load_spawn_rate, users / 2)  # all users within 2 s of the step
    return LocustRun(users, spawn, rate, settings.load_threshold_step_seconds, f"-{rate:g}")


def run_step(
    settings: LoadSettings, rate: float, wallets: Path, pids: dict[str, int], out: Path
) -> dict[str, Any]:
    run = step_run(settings, rate)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = locust_process.start(run, settings, wallets, out)
    cpu = CpuSample.begin(pids)
    stats = locust_process.finish(process, run, out)
    shares = cpu.end()
    # Locust has exited by now, so /proc no longer has it: its CPU is in our children's usage.
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (ended.ru_utime + ended.ru_stime) - (children.ru_utime + children.ru_stime)
    shares["locust"] = round(100 * used / (time.monotonic() - started), 1)
    return {
        "target_rate": rate,
        "users": run.users,
        "seconds": run.seconds,
        "served_rate": round(stats.rate, 1),
        "requests": stats.requests,
        "failures": stats.failures,
        "error_rate": round(stats.error_rate, 5),
        "p50_ms": stats.p50_ms,
        "p99_ms": stats.p99_ms,
        "breaches": breaches(stats, limits(settings), rate),
        "cpu_percent_of_a_core": shares,
        "report": f"report{run.tag}.html",
    }


def row(step: dict[str, Any]) -> dict[str, str]:
    cpu = step["cpu_percent_of_a_core"]
    return {
        "target/s": f"{step['target_rate']:g}",
        "users": str(step["users"]),
        "served/s": f"{step['served_rate']:.1f}",
        "errors": f"{step['failures']} ({step['error_rate']:.3%})",
        "p50 ms": f"{step['p50_ms']:.0f}",
        "p99 ms": f"{step['p99_ms']:.0f}",
        "held": "yes" if not step["breaches"] else "; ".join(step["breaches"]),
        "CPU % of a core": ", ".join(f"{name} {share:g}" for name, share in cpu.items()),
    }


def main() -> int:
    settings = LoadSettings()
    out = results_dir(settings, "load-threshold")
    rates = rate_steps(
        settings.load_threshold_start,
        settings.load_threshold_step,
        settings.load_threshold_max_rate,
    )
    print(
        f"load-threshold against {settings.load_host}: {rates[0]:g}/s, +{rates[1] - rates[0]:g}/s"
        f" every {settings.load_threshold_step_seconds} s until p99 > {settings.load_p99_ms:g} ms"
        f" or errors > {settings.load_max_error_rate:.2%}; reports in {out}"
    )
    try:
        wallets = make_shop(settings, out)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"load could not run against {settings.load_host}: {exc}", file=sys.stderr)
        return 2
    pids = listening_pids(wanted_ports(settings, SystemPorts()))
    steps: list[dict[str, Any]] = []
    for rate in rates:
        try:
            step = run_step(settings, rate, wallets, pids, out)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 2
        steps.append(step)
        print_table([row(step)], COLUMNS)
        if step["breaches"]:
            break
    held = highest_held([(s["target_rate"], s["breaches"]) for s in steps])
    print()
    print_table([row(s) for s in steps], COLUMNS)
    print(f"\nhighest rate that held: {f'{held:g}/s' if held else 'none (the first step broke)'}")
    result = {
        "host": settings.load_host,
        "limits": vars(limits(settings)),
        "highest_rate_held": held,
        "steps": steps,
    }
    (out / "threshold.json").write_text(json.dumps(result, indent=2))
    draw(steps, held, settings.load_p99_ms, settings.load_max_error_rate, out / "threshold.png")
    print(f"chart {out / 'threshold.png'}, JSON {out / 'threshold.json'}")
    audited = audit_after(settings, out)
    return 1 if held is None or audited is False else 0


if __name__ == "__main__":
    sys.exit(main())
