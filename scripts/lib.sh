# Helpers shared by the scripts in this folder. Source it; it defines functions only.

log() { printf '[mockpay] %s\n' "$*" >&2; }
die() { printf '[mockpay] error: %s\n' "$*" >&2; exit 1; }

# Export every KEY=VALUE of .env that the environment does not already set.
load_env() {
  local file=${ENV_FILE:-$ROOT/.env} line key
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    key=${line%%=*}
    [ -n "${!key+x}" ] || export "$key=${line#*=}"
  done < "$file"
}

# Write random secrets into .env for the ones neither .env nor the environment has.
ensure_env() {
  local file=${ENV_FILE:-$ROOT/.env} key
  touch "$file"
  for key in PAYMENT_API_KEYS BANK_GATEWAY_TOKEN FAKE_BANK_ADMIN_TOKEN MYSQL_PASSWORD; do
    if ! grep -q "^$key=" "$file" && [ -z "${!key:-}" ]; then
      echo "$key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >> "$file"
      log "wrote a random $key into $file"
    fi
  done
}

# processes NAME COUNT BASE_PORT PORT: "name port" of each process of a service that may run
# as several (PAYMENT_REPLICAS, POINTS_WORKERS): NAME-1 on BASE_PORT, NAME-2 on BASE_PORT+1,
# ... when COUNT > 1, else NAME itself on PORT. services.sh starts them, monitor.sh scrapes them.
processes() {
  local name=$1 count=$2 base=$3 port=$4 i
  if [ "$count" -gt 1 ]; then
    for i in $(seq 1 "$count"); do echo "$name-$i $(( base + i - 1 ))"; done
  else
    echo "$name $port"
  fi
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for NAME SECONDS COMMAND...: run COMMAND until it succeeds or the deadline passes.
wait_for() {
  local name=$1 seconds=$2 deadline
  shift 2
  deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "$name did not become healthy within ${seconds}s"
    sleep 0.5
  done
  log "$name: healthy"
}

# spawn PIDFILE LOGFILE COMMAND...: run COMMAND detached in its own session, its pid in PIDFILE.
spawn() {
  local pidfile=$1 logfile=$2
  shift 2
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 < /dev/null &
  local deadline=$(( $(date +%s) + 10 ))
  until [ -s "$pidfile" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "could not start $*"
    sleep 0.1
  done
}

# stop_pidfile NAME PIDFILE [SECONDS]: stop the process whose pid the file holds, and wait
# for it; after SECONDS (default 60) it is killed.
stop_pidfile() {
  local name=$1 pidfile=$2 seconds=${3:-60} pid deadline
  [ -f "$pidfile" ] || { log "$name: not started by us"; return 0; }
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    deadline=$(( $(date +%s) + seconds ))
    while kill -0 "$pid" 2>/dev/null; do
      if [ "$(date +%s)" -ge "$deadline" ]; then kill -9 "$pid" 2>/dev/null || true; break; fi
      sleep 0.2
    done
    log "$name: stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}
