#!/usr/bin/env bash
# Start or stop the four services in the background: logs in .local/logs, pids in .local/run.
#   scripts/services.sh up|down
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
load_env

STATE=${MOCKPAY_STATE_DIR:-$ROOT/.local}
RUN=$STATE/run
LOGS=$STATE/logs
PY=$ROOT/.venv/bin/python
SERVICE_WAIT_SECONDS=${SERVICE_WAIT_SECONDS:-60}

# name, module, health url
SERVICES="fake-bank services.bank_gateway.fake_bank http://${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}/health
bank-gateway services.bank_gateway http://${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}/health
payment services.payment http://${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}/health
points services.points http://${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003}/health"

healthy() { "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }

up() {
  mkdir -p "$RUN" "$LOGS"
  local name module url
  while read -r name module url; do
    if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      log "$name: already running (pid $(cat "$RUN/$name.pid"))"
    else
      log "$name: starting, log in $LOGS/$name.log"
      rm -f "$RUN/$name.pid"
      spawn "$RUN/$name.pid" "$LOGS/$name.log" "$PY" -m "$module"
    fi
    wait_for "$name" "$SERVICE_WAIT_SECONDS" healthy "$url" \
      || die "$name did not answer $url; see $LOGS/$name.log"
  done <<< "$SERVICES"
  cat <<MSG

Mock-Pay is up.
  payment service   http://${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}   (docs: /docs)
  bank gateway      http://${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}
  fake bank         http://${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}
  points service    http://${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003}
  MariaDB 127.0.0.1:${MYSQL_PORT:-3306}   Redis 127.0.0.1:${REDIS_PORT:-6379}   Kafka 127.0.0.1:${KAFKA_PORT:-9092}
  API key           ${PAYMENT_API_KEYS%%,*}
  try: curl -H "Authorization: Bearer ${PAYMENT_API_KEYS%%,*}" http://127.0.0.1:${PAYMENT_PORT:-8000}/wallets -d '{"user_id":"alice"}' -H 'content-type: application/json'
  logs: make logs      stop: make down
MSG
}

down() {
  local name module url
  while read -r name module url; do
    stop_pidfile "$name" "$RUN/$name.pid"
  done <<< "$(tac <<< "$SERVICES")"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
