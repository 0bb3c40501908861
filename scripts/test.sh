#!/usr/bin/env bash
# The whole suite, cheapest first: unit (no servers), integration (real MariaDB, Redis,
# Kafka), end-to-end (HTTP against service processes). `make test` runs it after setup and
# infra-up. Extra arguments go to every pytest run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python

bash scripts/infra.sh test-packages || exit 1

status=0
# TEST_SUITES picks some (make test-ha runs "integration e2e").
for suite in ${TEST_SUITES:-unit integration e2e}; do
  echo "== $suite tests"
  "$PY" -m pytest "tests/$suite" -q "$@"
  rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "no $suite tests collected: that is a failure, every suite has tests" >&2
    status=1
  elif [ "$rc" -ne 0 ]; then
    status=1
  fi
done
exit "$status"
