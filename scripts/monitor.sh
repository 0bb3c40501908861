#!/usr/bin/env bash
# Start or stop Prometheus (Debian's package) on 127.0.0.1:PROMETHEUS_PORT. The scrape config
# and rules are deploy/prometheus/; the copy it runs on is rendered with the service ports
# of .env into $STATE/prometheus/, and its data lives there too.
#   scripts/monitor.sh up|down|status|render   (render: write the configuration only)
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
# The payment and points targets: one per process (targets/*.json), each replica and worker
# under PAYMENT_REPLICAS / POINTS_WORKERS > 1, never HAProxy in front of them.
render() {
  mkdir -p "$DIR/targets"
  sed -e "s#127.0.0.1:8001#${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}#" \
      -e "s#127.0.0.1:8002#${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}#" \
      -e "s#127.0.0.1:9090#$HOST:$PORT#" \
      -e "s#- rules.yml#- $ROOT/deploy/prometheus/rules.yml#" \
      deploy/prometheus/prometheus.yml > "$DIR/prometheus.yml"
  targets "${PAYMENT_HOST:-127.0.0.1}" payment "${PAYMENT_REPLICAS:-1}" \
    "${PAYMENT_REPLICA_BASE_PORT:-8010}" "${PAYMENT_PORT:-8000}" > "$DIR/targets/payment.json.new"
  targets "${POINTS_HOST:-127.0.0.1}" points "${POINTS_WORKERS:-1}" \
    "${POINTS_WORKER_BASE_PORT:-8020}" "${POINTS_PORT:-8003}" > "$DIR/targets/points.json.new"
  # Prometheus watches these files: each is replaced whole, never seen half written.
  mv "$DIR/targets/payment.json.new" "$DIR/targets/payment.json"
  mv "$DIR/targets/points.json.new" "$DIR/targets/points.json"
}

# targets HOST NAME COUNT BASE_PORT PORT: a file_sd list, one target per process.
targets() {
  local host=$1 process port separator=""
  shift
  echo "["
  while read -r process port; do
    [ -z "$separator" ] || echo "$separator"
    printf '  {"targets": ["%s:%s"], "labels": {"instance": "%s"}}' "$host" "$port" "$process"
    separator=","
  done < <(processes "$@")
  printf '\n]\n'
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
  render) mkdir -p "$DIR"; render; log "prometheus: configuration rendered into $DIR" ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status|render" ;;
esac
