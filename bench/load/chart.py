"""The threshold chart: served rate, p50/p99 and errors against the target rate."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def draw(
    steps: list[dict[str, Any]],
    held: float | None,
    p99_limit: float,
    error_limit: float,
    path: Path,
) -> None:
    target = [s["target_rate"] for s in steps]
    fig, (rates, latency) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    rates.plot(target, target, "k:", label="target")
    rates.plot(target, [s["served_rate"] for s in steps], "o-", label="served")
    rates.set_ylabel("requests/s")
    rates.legend(loc="upper left")
    title = f"highest rate held: {held:g}/s" if held else "no step held"
    rates.set_title(f"make load-threshold: {title}")

    latency.plot(target, [s["p50_ms"] for s in steps], "o-", label="p50")
    latency.plot(target, [s["p99_ms"] for s in steps], "o-", label="p99")
    latency.axhline(p99_limit, color="red", linestyle="--", label=f"p99 limit {p99_limit:g} ms")
    latency.set_xlabel("target rate (tasks/s)")
    latency.set_ylabel("latency (ms)")
    latency.legend(loc="upper left")
    errors = latency.twinx()
    shares = [100 * s["error_rate"] for s in steps]
    errors.bar(target, shares, width=10, alpha=0.3, color="red")
    errors.axhline(100 * error_limit, color="red", alpha=0.3, linestyle=":")
    errors.set_ylim(0, max(0.2, 100 * error_limit, *shares) * 1.2)
    errors.set_ylabel("errors (%), bars", color="red")
    if held:
        for axis in (rates, latency):
            axis.axvline(held, color="green", alpha=0.4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
