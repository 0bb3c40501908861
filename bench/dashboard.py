"""The Grafana dashboard without Grafana: `make dashboard` renders its panels to PNG files.

Reads deploy/grafana/dashboards/mockpay.json (the one home of the panels and their
queries), asks Prometheus's query API for the last N minutes of each, and draws every panel
with matplotlib into bench/results/dashboard-<timestamp>/: one PNG per panel and
`overview.png` with all of them, in the dashboard's rows.
"""

import argparse
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.dates as mdates  # noqa: E402 - after choosing the backend
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from bench.report import RESULTS  # noqa: E402
from shared.settings import REPO_ROOT, BaseServiceSettings  # noqa: E402

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "mockpay.json"
COLUMNS = 3


class MonitorSettings(BaseServiceSettings):
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9090
    dashboard_minutes: float = 15.0


@dataclass(frozen=True)
class Panel:
    row: str
    title: str
    unit: str
    targets: list[tuple[str, str]]  # (expr, legend format)


def panels(dashboard: dict[str, Any]) -> list[Panel]:
    found, row = [], ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        targets = [(t["expr"], t.get("legendFormat", "")) for t in panel["targets"]]
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        found.append(Panel(row, panel["title"], unit, targets))
    return found


def legend(template: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)
    return text or ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def query_range(client: httpx.Client, expr: str, start: float, end: float, step: float) -> list:
    answer = client.get(
        "/api/v1/query_range", params={"query": expr, "start": start, "end": end, "step": step}
    )
    body = answer.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body.get('error', answer.text)}")
    return body["data"]["result"]


def draw(axes: Axes, panel: Panel, series: list[tuple[str, list[datetime], list[float]]]) -> None:
    axes.set_title(f"{panel.row}: {panel.title}", fontsize=9)
    for label, times, values in series:
        axes.plot(mdates.date2num(times), values, label=label, linewidth=1.2)
    if not series:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    axes.tick_params(labelsize=7)
    axes.set_ylabel(panel.unit, fontsize=7)
    axes.grid(alpha=0.3)
    if series:
        axes.legend(fontsize=6, loc="upper left")


def render(url: str, minutes: float, out: Path) -> list[Path]:
    end = time.time()
    start = end - minutes * 60
    step = max(5.0, minutes * 60 / 300)
    all_panels = panels(json.loads(DASHBOARD.read_text()))
    rows = -(-len(all_panels) // COLUMNS)
    overview, grid = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3 * rows), squeeze=False)
    written = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for index, panel in enumerate(all_panels):
            series = []
            for expr, template in panel.targets:
                for result in query_range(client, expr, start, end, step):
                    times = [datetime.fromtimestamp(float(t), UTC) for t, _ in result["values"]]
                    values = [float(v) for _, v in result["values"]]
                    series.append((legend(template, result["metric"]), times, values))
            figure, axes = plt.subplots(figsize=(7, 3.2))
            draw(axes, panel, series)
            figure.tight_layout()
            path = out / f"{index + 1:02d}-{re.sub(r'[^a-z0-9]+', '-', panel.title.lower())}.png"
            figure.savefig(path, dpi=90)
            plt.close(figure)
            written.append(path)
            draw(grid[index // COLUMNS][index % COLUMNS], panel, series)
    for spare in range(len(all_panels), rows * COLUMNS):
        grid[spare // COLUMNS][spare % COLUMNS].axis("off")
    overview.suptitle(f"Mock-Pay, last {minutes:g} min to {datetime.now(UTC):%H:%M} UTC")
    overview.tight_layout(rect=(0, 0, 1, 0.97))
    overview_path = out / "overview.png"
    overview.savefig(overview_path, dpi=60)
    plt.close(overview)
    return [overview_path, *written]


def main() -> None:
    settings = MonitorSettings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=settings.dashboard_minutes)
    parser.add_argument(
        "--prometheus",
        default=f"http://{settings.prometheus_host}:{settings.prometheus_port}",
        help="Prometheus base URL",
    )
    args = parser.parse_args()
    out = RESULTS / f"dashboard-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    for path in render(args.prometheus, args.minutes, out):
        print(path)


if __name__ == "__main__":
    main()
