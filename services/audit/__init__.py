"""The invariant audit: `python -m services.audit [--json]`, or `run_audit()` from code.

    report = await run_audit()          # or audit() outside an event loop
    report.ok                           # True when there is no discrepancy
    report.to_dict()                    # what --json prints

Exit status of the command: 0 no discrepancy, 1 discrepancies, 2 the audit could not run.
"""

import asyncio

from services.audit.audit import run_audit
from services.audit.findings import Finding, Findings
from services.audit.report import AuditReport
from services.audit.settings import AuditSettings

__all__ = ["AuditReport", "AuditSettings", "Finding", "Findings", "audit", "run_audit"]


def audit(settings: AuditSettings | None = None) -> AuditReport:
    """run_audit() for callers without an event loop."""
    return asyncio.run(run_audit(settings))
