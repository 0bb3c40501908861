"""What a load run ends with: the audit, a summary JSON, and the exit status."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.load.settings import LoadSettings
from services.audit import run_audit
from shared.infra_errors import DEPENDENCY_ERRORS


def results_dir(settings: LoadSettings, kind: str) -> Path:
    return settings.load_results_dir / f"{kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def audit_after(settings: LoadSettings, out: Path) -> bool | None:
    """Run the audit, print it, keep its JSON; None when switched off (LOAD_AUDIT=false)."""
    if not settings.load_audit:
        print("audit: skipped (LOAD_AUDIT=false)")
        return None
    try:
        report = asyncio.run(run_audit())
    except DEPENDENCY_ERRORS as exc:
        print(f"audit: could not read the databases: {exc!r}")
        return False
    (out / "audit.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    print(report.text())
    return report.ok


def write_summary(out: Path, payload: dict[str, Any]) -> Path:
    path = out / "summary.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
