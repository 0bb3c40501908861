#!/usr/bin/env bash
# The four services in the background under supervisord (PyPI `supervisor`): a service that
# exits, crashes or is killed is started again at once. Logs in .local/logs, supervisord's
# socket and pid in .local/run.
#   scripts/services.sh up|down|status
# MOCKPAY_SERVICES="fake-bank payment" runs a subset (tests do); the default is all four.
# PAYMENT_REPLICAS=2 runs payment-1, payment-2 on PAYMENT_REPLICA_BASE_PORT, +1 behind HAProxy
# (Debian's package) on PAYMENT_PORT. POINTS_WORKERS=2 runs points-1, points-2 (one consumer
# group, each its own process and port from POINTS_WORKER_BASE_PORT) behind HAProxy on
# POINTS_PORT.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
load_env
# JSON log lines with trace ids (shared/logs.py), unless .env or the caller says otherwise.
export LOG_FORMAT=${LOG_FORMAT:-json}

STATE=${MOCKPAY_STATE_DIR:-$ROOT/.local}
RUN=$STATE/run
LOGS=$STATE/logs
VENV=$ROOT/.venv/bin
CONF=$RUN/supervisord.conf
SERVICE_WAIT_SECONDS=${SERVICE_WAIT_SECONDS:-60}
# A process that lives this long counts as started; one that dies sooner is retried this
# many times (1 s, 2 s, ... apart) before supervisord gives up on it.
SUPERVISOR_START_SECONDS=${SUPERVISOR_START_SECONDS:-1}
SUPERVISOR_START_RETRIES=${SUPERVISOR_START_RETRIES:-10}
# SIGTERM first: the points consumer leaves its group, the payment service drains.
SUPERVISOR_STOP_WAIT_SECONDS=${SUPERVISOR_STOP_WAIT_SECONDS:-20}

PAYMENT_REPLICAS=${PAYMENT_REPLICAS:-1}
PAYMENT_REPLICA_BASE_PORT=${PAYMENT_REPLICA_BASE_PORT:-8010}
HAPROXY_CHECK_INTERVAL_MS=${HAPROXY_CHECK_INTERVAL_MS:-1000}
HAPROXY_RETRIES=${HAPROXY_RETRIES:-3}
POINTS_WORKERS=${POINTS_WORKERS:-1}
POINTS_WORKER_BASE_PORT=${POINTS_WORKER_BASE_PORT:-8020}
POINTS_DATA_DIR=${POINTS_DATA_DIR:-$ROOT/.local/points}

# name, module, health url
ALL_SERVICES="fake-bank services.bank_gateway.fake_bank http://${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}/health
bank-gateway services.bank_gateway http://${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}/health
payment services.payment http://${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}/health
points services.points http://${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003}/health"

CHOSEN=$(while read -r name module url; do
  case " ${MOCKPAY_SERVICES:-$(cut -d' ' -f1 <<< "$ALL_SERVICES" | tr '\n' ' ')} " in
    *" $name "*) echo "$name $module $url" ;;
  esac
done <<< "$ALL_SERVICES")

# Replicas: "name module url PAYMENT_PORT=port". The replicas start before
# HAProxy, which is "payment" then: it answers on PAYMENT_PORT once a replica is healthy.
# Points workers likewise ("points" is then HAProxy on POINTS_PORT); each has a faust data
# folder of its own.
expand() {
  local name module url process port
  while read -r name module url; do
    if [ "$name" = payment ] && [ "$PAYMENT_REPLICAS" -gt 1 ]; then
      while read -r process port; do
        echo "$process $module http://${PAYMENT_HOST:-127.0.0.1}:$port/health PAYMENT_PORT=$port"
      done < <(processes payment "$PAYMENT_REPLICAS" "$PAYMENT_REPLICA_BASE_PORT" "${PAYMENT_PORT:-8000}")
      echo "payment haproxy $url"
    elif [ "$name" = points ] && [ "$POINTS_WORKERS" -gt 1 ]; then
      while read -r process port; do
        echo "$process $module http://${POINTS_HOST:-127.0.0.1}:$port/health POINTS_PORT=$port,POINTS_DATA_DIR=$POINTS_DATA_DIR/$process"
      done < <(processes points "$POINTS_WORKERS" "$POINTS_WORKER_BASE_PORT" "${POINTS_PORT:-8003}")
      echo "points haproxy $url"
    else
      echo "$name $module $url"
    fi
  done <<< "$CHOSEN"
}
SERVICES=$(expand)

healthy() { "$VENV/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"; }

ctl() { "$VENV/supervisorctl" -c "$CONF" "$@"; }

# supervisord answers on its socket: the only proof that it runs (a pid file can outlive it,
# and a killed process's pid still answers kill -0 until it is reaped).
supervisor_answers() { [ -S "$RUN/supervisor.sock" ] && ctl pid >/dev/null 2>&1; }

# RUNNING in supervisord's own table: not just "something answers on its port".
program_running() { ctl status "$1" 2>/dev/null | grep -q RUNNING; }

# HAProxy in front of the payment replicas: /health checks take a replica out within two
# failed checks; a request whose connection failed or got no answer (a replica killed under
# it) is sent again to another one (retry-on + redispatch). Payments and top-ups are
# idempotent by order_id / charge_id, so sending one again is safe. http-buffer-request:
# HAProxy reads the whole request before it picks a replica; without it a request whose
# body was still on its way when the replica died was not retried (logged SD--, the client
# saw its connection closed). Only abnormal requests are logged (errors, retries).
haproxy_config() { if [ "$1" = points ]; then echo "$RUN/haproxy-points.cfg"; else echo "$RUN/haproxy.cfg"; fi; }

# Points workers: any of them answers the points API (it reads MariaDB), so HAProxy checks
# /health/live: /health is 503 on every member while its group rebalances.
write_haproxy_config() {
  local service=$1 process port file
  file=$(haproxy_config "$service")
  local count=$PAYMENT_REPLICAS base=$PAYMENT_REPLICA_BASE_PORT bind=${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}
  local check=/health host=${PAYMENT_HOST:-127.0.0.1}
  if [ "$service" = points ]; then
    count=$POINTS_WORKERS base=$POINTS_WORKER_BASE_PORT
    bind=${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003} check=/health/live host=${POINTS_HOST:-127.0.0.1}
  fi
  cat > "$file" <<CFG
# Written by scripts/services.sh up; edit that script, not this file.
global
  log stdout format raw local0 info
  maxconn 4096

defaults
  mode http
  log global
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  retries $HAPROXY_RETRIES
  retry-on conn-failure empty-response
  option redispatch
  option http-buffer-request
  option httplog
  option dontlog-normal

frontend $service
  bind $bind
  default_backend ${service}_replicas

backend ${service}_replicas
  balance roundrobin
  option httpchk GET $check
  http-check expect status 200
  default-server inter ${HAPROXY_CHECK_INTERVAL_MS} fall 2 rise 1
CFG
  while read -r process port; do
    echo "  server $process $host:$port check" >> "$file"
  done < <(processes "$service" "$count" "$base" "$base")  # count > 1: HAProxy only then
}

write_config() {
  local name module url setting command environment
  cat > "$CONF" <<CONF
; Written by scripts/services.sh up; edit that script, not this file.
[unix_http_server]
file=$RUN/supervisor.sock
chmod=0700

[supervisord]
logfile=$LOGS/supervisord.log
logfile_maxbytes=10MB
pidfile=$RUN/supervisord.pid
childlogdir=$LOGS
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$RUN/supervisor.sock
CONF
  while read -r name module url setting; do
    command="$VENV/python -m $module"
    environment=""
    if [ "$module" = haproxy ]; then
      write_haproxy_config "$name"
      command="$(command -v haproxy) -db -f $(haproxy_config "$name")"
    fi
    # "A=1,B=2" -> environment=A="1",B="2"
    if [ -n "${setting:-}" ]; then environment="environment=$(sed -E 's/([A-Z_]+)=([^,]*)/\1="\2"/g' <<< "$setting")"; fi
    cat >> "$CONF" <<CONF

[program:$name]
command=$command
$environment
directory=$ROOT
autostart=true
autorestart=true
startsecs=$SUPERVISOR_START_SECONDS
startretries=$SUPERVISOR_START_RETRIES
stopsignal=TERM
stopwaitsecs=$SUPERVISOR_STOP_WAIT_SECONDS
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=$LOGS/$name.log
stdout_logfile_maxbytes=50MB
stdout_logfile_backups=3
CONF
  done <<< "$SERVICES"
}

up() {
  mkdir -p "$RUN" "$LOGS"
  if supervisor_answers; then
    log "supervisord: already running (pid $(ctl pid)); starting what is stopped"
    ctl start all >/dev/null || true
  else
    write_config
    rm -f "$RUN/supervisor.sock"
    log "supervisord: starting the services, logs in $LOGS"
    spawn "$RUN/supervisord.spawn.pid" "$LOGS/supervisord.out" "$VENV/supervisord" -c "$CONF"
    wait_for "supervisord" 30 supervisor_answers
  fi
  local name module url setting
  while read -r name module url setting; do
    wait_for "$name (supervisord)" "$SERVICE_WAIT_SECONDS" program_running "$name" \
      || die "$name is not RUNNING under supervisord; see $LOGS/$name.log"
    wait_for "$name" "$SERVICE_WAIT_SECONDS" healthy "$url" \
      || die "$name did not answer $url; see $LOGS/$name.log"
  done <<< "$SERVICES"
  local replicas="" workers=""
  if [ "$PAYMENT_REPLICAS" -gt 1 ]; then
    replicas=" HAProxy over $PAYMENT_REPLICAS replicas, ports $PAYMENT_REPLICA_BASE_PORT and up"
  fi
  if [ "$POINTS_WORKERS" -gt 1 ]; then
    workers=" HAProxy over $POINTS_WORKERS workers, ports $POINTS_WORKER_BASE_PORT and up"
  fi
  local key=${PAYMENT_API_KEYS%%,*}
  key=${key%%:*}  # an entry may be key:scope+scope
  cat <<MSG

Mock-Pay is up (kept alive by supervisord: make status).
  payment service   http://${PAYMENT_HOST:-127.0.0.1}:${PAYMENT_PORT:-8000}   (docs: /docs)$replicas
  bank gateway      http://${BANK_GATEWAY_HOST:-127.0.0.1}:${BANK_GATEWAY_PORT:-8001}
  fake bank         http://${FAKE_BANK_HOST:-127.0.0.1}:${FAKE_BANK_PORT:-8002}
  points service    http://${POINTS_HOST:-127.0.0.1}:${POINTS_PORT:-8003}$workers
  MariaDB 127.0.0.1:${MYSQL_PORT:-3306}   Redis 127.0.0.1:${REDIS_PORT:-6379}   Kafka 127.0.0.1:${KAFKA_PORT:-9092}
  API key           $key
  try: curl -H "Authorization: Bearer $key" http://127.0.0.1:${PAYMENT_PORT:-8000}/wallets -d '{"user_id":"alice"}' -H 'content-type: application/json'
  logs: make logs      status: make status      stop: make down
MSG
}

# SIGTERM to supervisord stops every service (SIGTERM, then SIGKILL after stopwaitsecs) and
# then supervisord itself; stop_pidfile waits for it.
down() {
  stop_pidfile supervisord "$RUN/supervisord.spawn.pid"
  rm -f "$RUN/supervisor.sock" "$RUN/supervisord.pid"
}

# Each points worker's share of the events topic, as it reports it (GET /partitions).
worker_partitions() {
  local key=${PAYMENT_API_KEYS%%,*} i port
  key=${key%%:*}
  for i in $(seq 1 "$POINTS_WORKERS"); do
    port=$(( POINTS_WORKER_BASE_PORT + i - 1 ))
    printf 'points-%s partitions: ' "$i"
    "$VENV/python" - "http://${POINTS_HOST:-127.0.0.1}:$port/partitions" "$key" 2>/dev/null <<'PY' || echo "no answer"
import json, sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": f"Bearer {sys.argv[2]}"})
answer = json.load(urllib.request.urlopen(request, timeout=2))
print(answer["partitions"] if answer["joined"] else "none (rebalancing)")
PY
  done
}

status() {
  if supervisor_answers; then
    ctl status || true  # exits 3 when a program is not RUNNING; the table says which
    if [ "$POINTS_WORKERS" -gt 1 ]; then worker_partitions; fi
  else
    log "supervisord is not running (make up starts it)"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
