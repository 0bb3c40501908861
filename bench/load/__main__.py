"""`make load`: the shop's traffic against LOAD_HOST for LOAD_SECONDS, then the audit.

Exit status 0 when p99, the error rate and the served rate are within their limits and the
audit finds no discrepancy; 1 otherwise; 2 when Locust itself could not run.
"""

import sys

import httpx

from bench.load import locust_process
from bench.load.locust_process import LocustRun
from bench.load.outcome import audit_after, results_dir, write_summary
from bench.load.settings import LoadSettings
from bench.load.setup import make_shop
from bench.load.thresholds import Limits, breaches
from bench.report import print_table


def limits(settings: LoadSettings) -> Limits:
    return Limits(settings.load_p99_ms, settings.load_max_error_rate, settings.load_min_rate_share)


def main() -> int:
    settings = LoadSettings()
    run = LocustRun.from_settings(settings)
    out = results_dir(settings, "load")
    print(
        f"load: {run.rate:g} tasks/s from {run.users} users for {run.seconds} s"
        f" against {settings.load_host}; report in {out}"
    )
    try:
        wallets = make_shop(settings, out)
        stats = locust_process.finish(locust_process.start(run, settings, wallets, out), run, out)
    except (RuntimeError, httpx.HTTPError) as exc:
        print(f"load could not run against {settings.load_host}: {exc}", file=sys.stderr)
        return 2
    reasons = breaches(stats, limits(settings), run.rate)
    print_table(
        [
            {
                "target/s": f"{run.rate:g}",
                "served/s": f"{stats.rate:.1f}",
                "requests": stats.requests,
                "errors": f"{stats.failures} ({stats.error_rate:.3%})",
                "p50 ms": f"{stats.p50_ms:.0f}",
                "p99 ms": f"{stats.p99_ms:.0f}",
                "held": "yes" if not reasons else "; ".join(reasons),
            }
        ],  # fmt: skip
        ["target/s", "served/s", "requests", "errors", "p50 ms", "p99 ms", "held"],
    )
    audited = audit_after(settings, out)
    write_summary(
        out, {"run": vars(run), "stats": stats.to_dict(), "breaches": reasons, "audit_ok": audited}
    )
    print(f"HTML report: {out / 'report.html'}")
    return 1 if reasons or audited is False else 0


if __name__ == "__main__":
    sys.exit(main())
