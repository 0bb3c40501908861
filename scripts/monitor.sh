#!/usr/bin/env bash
# Start or stop Prometheus (Debian's package) on 127.0.0.1:PROMETHEUS_PORT. The scrape config
# and rules are deploy/prometheus/; the copy it runs on is rendered with the service ports
# of .env into $STATE/prometheus/, and its data lives there too.
#   scripts/monitor.sh up|down|status
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
load_env

STATE=${MOCKPAY_STATE_DIR:-$ROOT/.local}
DIR=$STATE/prometheus
HOST=${PROMETHEUS_HOST:-127.0.0.1}
PORT=${PROMETHEUS_PORT:-9090}
PIDFILE=$DIR/prometheus.pid
PROMETHEUS_WAIT_SECONDS=${PROMETHEUS_WAIT_SECONDS:-60}

# The committed config names the contract's default addresses; point them at this checkout's.
render() {
  sed -e "s#127.0.0.1:8000#${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}#" \
      -e "s#127.0.0.1:8001#${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}#" \
      -e "s#127.0.0.1:8002#${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}#" \
      -e "s#127.0.0.1:8003#${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003}#" \
      -e "s#127.0.0.1:9090#$HOST:$PORT#" \
      -e "s#- rules.yml#- $ROOT/deploy/prometheus/rules.yml#" \
      deploy/prometheus/prometheus.yml > "$DIR/prometheus.yml"
}

ready() { "$ROOT/.venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }

# Alive and not a zombie: a killed Prometheus whose parent is gone may wait unreaped.
running() {
  [ -f "$PIDFILE" ] || return 1
  local state
  state=$(awk '{print $3}' "/proc/$(cat "$PIDFILE")/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

up() {
  command -v prometheus >/dev/null || bash scripts/infra.sh packages
  mkdir -p "$DIR/data"
  render
  if running; then
    kill -HUP "$(cat "$PIDFILE")"  # reload the rendered config and the rules
    log "prometheus: already running (pid $(cat "$PIDFILE")), configuration reloaded"
  else
    port_open "$HOST" "$PORT" && die "prometheus: $HOST:$PORT is taken by a process we did not start; set PROMETHEUS_PORT"
    log "prometheus: starting on $HOST:$PORT, log in $DIR/prometheus.log"
    rm -f "$PIDFILE"
    spawn "$PIDFILE" "$DIR/prometheus.log" prometheus \
      --config.file="$DIR/prometheus.yml" \
      --storage.tsdb.path="$DIR/data" \
      --storage.tsdb.retention.time="${PROMETHEUS_RETENTION:-2d}" \
      --web.listen-address="$HOST:$PORT" \
      --web.enable-lifecycle
  fi
  wait_for prometheus "$PROMETHEUS_WAIT_SECONDS" ready "http://$HOST:$PORT/-/ready" \
    || die "prometheus did not get ready; see $DIR/prometheus.log"
  log "prometheus: http://$HOST:$PORT (targets: /targets, alerts: /alerts)"
}

down() { stop_pidfile prometheus "$PIDFILE"; }

status() {
  if running; then echo "prometheus up (pid $(cat "$PIDFILE")) on $HOST:$PORT"; else echo "prometheus down"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
