#!/usr/bin/env bash
# `make test-ha`: the integration and end-to-end suites against the high-availability
# servers: a 3-broker Kafka (topics with 3 replicas, 2 in sync), the 3-node quorum lock, and
# end-to-end services as `make up` runs them with 2 payment replicas behind HAProxy and 2
# points workers. Settings as `KAFKA_BROKERS=3 LOCK_REDIS_NODES=3 PAYMENT_REPLICAS=2
# POINTS_WORKERS=2 make up` (the caller's environment wins). Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export KAFKA_BROKERS=${KAFKA_BROKERS:-3} LOCK_REDIS_NODES=${LOCK_REDIS_NODES:-3}
export PAYMENT_REPLICAS=${PAYMENT_REPLICAS:-2} POINTS_WORKERS=${POINTS_WORKERS:-2}

# A single broker of ours holds node 1's port: it cannot join a quorum, so it makes way.
STATE=${MOCKPAY_STATE_DIR:-$ROOT/.local}
if [ "$KAFKA_BROKERS" -gt 1 ] && [ -f "$STATE/kafka/kafka.pid" ] \
   && kill -0 "$(cat "$STATE/kafka/kafka.pid")" 2>/dev/null; then
  log "stopping the single Kafka broker: node 1 of the cluster takes its port"
  bash scripts/infra.sh kafka-down
fi
bash scripts/infra.sh up
TEST_SUITES=${TEST_SUITES:-integration e2e} exec bash scripts/test.sh "$@"
