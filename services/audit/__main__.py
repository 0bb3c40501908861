"""`python -m services.audit [--json]`: exit 0 no discrepancy, 1 discrepancies, 2 cannot run."""

import argparse
import sys

import orjson

from services.audit import audit
from shared.infra_errors import DEPENDENCY_ERRORS

NO_DISCREPANCY, DISCREPANCIES, CANNOT_RUN = 0, 1, 2


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.audit",
        description="Check every money and event invariant in the payment and points databases.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    try:
        report = audit()
    except DEPENDENCY_ERRORS as exc:
        print(f"audit could not read the databases: {exc!r}", file=sys.stderr)
        return CANNOT_RUN
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(report.text())
    return NO_DISCREPANCY if report.ok else DISCREPANCIES


if __name__ == "__main__":
    sys.exit(main())
