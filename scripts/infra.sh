#!/usr/bin/env bash
# Local infrastructure on loopback: MariaDB, Redis and Kafka (KRaft), each with its data
# and logs under $MOCKPAY_STATE_DIR (default .local/). Idempotent: a server that already
# answers at its address is used as it is, whether we started it or not.
#
#   scripts/infra.sh up|down|status|packages
#   scripts/infra.sh kafka-up|kafka-down|mariadb-up|mariadb-down|redis-up|redis-down
#       one server alone: tests run servers of their own (MOCKPAY_STATE_DIR and the port
#       set) and kill and restart them by pid
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
load_env

STATE=${MOCKPAY_STATE_DIR:-$ROOT/.local}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-mockpay}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
KAFKA_HOST=${KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
MARIADB_BUFFER_POOL=${MARIADB_BUFFER_POOL:-256M}
INFRA_WAIT_SECONDS=${INFRA_WAIT_SECONDS:-90}
DATABASES=${MOCKPAY_DATABASES:-"mockpay_payment mockpay_points mockpay_payment_test mockpay_points_test mockpay_bench"}

MARIADB_DIR=$STATE/mariadb
REDIS_DIR=$STATE/redis
KAFKA_DIR=$STATE/kafka
KAFKA_LIBS=${KAFKA_LIBS:-$ROOT/.local/kafka-libs}

# ---------------------------------------------------------------- packages

ensure_packages() {
  local missing=()
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  command -v mariadb >/dev/null || missing+=(mariadb-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v java >/dev/null || missing+=(default-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v prometheus >/dev/null || missing+=(prometheus)
  apt_install "${missing[@]}"
}

# Tools only the test suite uses: docker-compose validates deploy/compose.yaml (`config -q`).
ensure_test_packages() {
  command -v docker-compose >/dev/null || apt_install docker-compose
}

apt_install() {
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing packages: $*. Install them with: sudo apt-get install -y $*"
  fi
  log "installing $* with apt-get"
  apt-get update -qq
  # policy-rc.d keeps Debian from starting system-wide copies of the servers we run ourselves.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------- MariaDB

mysqld_bin() { command -v mariadbd || echo /usr/sbin/mariadbd; }

mariadb_root() { mariadb --no-defaults --socket="$MARIADB_DIR/mysqld.sock" -uroot "$@"; }

mariadb_up() {
  if port_open "$MYSQL_HOST" "$MYSQL_PORT"; then
    log "mariadb: already answering on $MYSQL_HOST:$MYSQL_PORT"
  else
    mkdir -p "$MARIADB_DIR/data" "$MARIADB_DIR/logs"
    if [ ! -d "$MARIADB_DIR/data/mysql" ]; then
      log "mariadb: initialising data directory"
      mariadb-install-db --no-defaults --datadir="$MARIADB_DIR/data" --user="$(id -un)" \
        --auth-root-authentication-method=socket --auth-root-socket-user="$(id -un)" \
        --skip-test-db >"$MARIADB_DIR/logs/install.log" 2>&1 \
        || die "mariadb-install-db failed, see $MARIADB_DIR/logs/install.log"
    fi
    log "mariadb: starting on $MYSQL_HOST:$MYSQL_PORT"
    spawn "$MARIADB_DIR/mysqld.pid" "$MARIADB_DIR/logs/stdout.log" "$(mysqld_bin)" --no-defaults --datadir="$MARIADB_DIR/data" --user="$(id -un)" \
      --bind-address="$MYSQL_HOST" --port="$MYSQL_PORT" --socket="$MARIADB_DIR/mysqld.sock" \
      --pid-file="$MARIADB_DIR/mysqld.pid" --log-error="$MARIADB_DIR/logs/error.log" \
      --skip-name-resolve --max-connections=500 --innodb-buffer-pool-size="$MARIADB_BUFFER_POOL" \
      --character-set-server=utf8mb4 --collation-server=utf8mb4_bin \
      --transaction-isolation=REPEATABLE-READ --sql-mode=STRICT_ALL_TABLES,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO
    wait_for "mariadb" "$INFRA_WAIT_SECONDS" mariadb_root -e "SELECT 1"
  fi
  mariadb_provision
}

mariadb_provision() {
  local sql="" db
  for db in $DATABASES; do sql+="CREATE DATABASE IF NOT EXISTS \`$db\`;"; done
  sql+="CREATE USER IF NOT EXISTS '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';"
  sql+="CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';"
  sql+="ALTER USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';"
  sql+="ALTER USER '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';"
  sql+="GRANT ALL PRIVILEGES ON \`mockpay%\`.* TO '$MYSQL_USER'@'%';"
  sql+="GRANT ALL PRIVILEGES ON \`mockpay%\`.* TO '$MYSQL_USER'@'localhost';"
  if [ -S "$MARIADB_DIR/mysqld.sock" ] && mariadb_root -e "SELECT 1" >/dev/null 2>&1; then
    mariadb_root -e "$sql"
  elif mariadb --no-defaults -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" \
      -e "SELECT 1" >/dev/null 2>&1; then
    log "mariadb: not ours; user $MYSQL_USER already works, creating the databases with it"
    for db in $DATABASES; do
      mariadb --no-defaults -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" -p"$MYSQL_PASSWORD" \
        -e "CREATE DATABASE IF NOT EXISTS \`$db\`" \
        || die "cannot create database $db as $MYSQL_USER; grant it CREATE on mockpay%.*"
    done
  elif [ -n "${MYSQL_ROOT_PASSWORD:-}" ]; then
    log "mariadb: not ours; provisioning with MYSQL_ROOT_PASSWORD"
    mariadb --no-defaults -h"$MYSQL_HOST" -P"$MYSQL_PORT" -uroot -p"$MYSQL_ROOT_PASSWORD" -e "$sql"
  else
    die "a MySQL server answers on $MYSQL_HOST:$MYSQL_PORT but neither user $MYSQL_USER nor root (MYSQL_ROOT_PASSWORD) can log in; set MYSQL_USER/MYSQL_PASSWORD in .env"
  fi
}

mariadb_down() { stop_pidfile mariadb "$MARIADB_DIR/mysqld.pid"; }

# ---------------------------------------------------------------- Redis

redis_up() {
  if port_open "$REDIS_HOST" "$REDIS_PORT"; then
    log "redis: already answering on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  mkdir -p "$REDIS_DIR"
  log "redis: starting on $REDIS_HOST:$REDIS_PORT"
  redis-server --bind "$REDIS_HOST" --port "$REDIS_PORT" --daemonize yes \
    --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes
  wait_for "redis" "$INFRA_WAIT_SECONDS" redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping
}

redis_down() { stop_pidfile redis "$REDIS_DIR/redis.pid"; }

# ---------------------------------------------------------------- Kafka (KRaft)

kafka_libs() {
  if [ -f "$KAFKA_LIBS/.complete" ]; then return 0; fi
  log "kafka: assembling the broker's jars from Maven Central (once)"
  mkdir -p "$KAFKA_LIBS"
  mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$STATE/mvn.log" 2>&1 \
    || die "maven could not fetch Kafka's jars, see $STATE/mvn.log"
  touch "$KAFKA_LIBS/.complete"
}

KAFKA_JVM=(java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC
  -Dlog4j.configuration="file:$ROOT/infra/kafka/log4j.properties"
  -Dkafka.logs.dir="$KAFKA_DIR/logs" -cp "$KAFKA_LIBS/*")

kafka_up() {
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    log "kafka: already answering on $KAFKA_HOST:$KAFKA_PORT"
    return 0
  fi
  kafka_libs
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  sed -e "s#@HOST@#$KAFKA_HOST#g" -e "s#@PORT@#$KAFKA_PORT#g" \
      -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" -e "s#@DATA@#$KAFKA_DIR/data#g" \
      infra/kafka/server.properties > "$KAFKA_DIR/server.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "kafka: formatting storage"
    local cluster_id
    cluster_id=$("${KAFKA_JVM[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    "${KAFKA_JVM[@]}" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || die "kafka storage format failed, see $KAFKA_DIR/logs/format.log"
  fi
  log "kafka: starting on $KAFKA_HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
  : >"$KAFKA_DIR/logs/stdout.log"
  spawn "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR/logs/stdout.log" \
    "${KAFKA_JVM[@]}" kafka.Kafka "$KAFKA_DIR/server.properties"
  wait_for "kafka" "$INFRA_WAIT_SECONDS" kafka_ready
}

kafka_ready() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" && grep -q "Kafka Server started" "$KAFKA_DIR/logs/stdout.log"
}

kafka_down() { stop_pidfile kafka "$KAFKA_DIR/kafka.pid"; }

# ---------------------------------------------------------------- commands

status() {
  local name host port
  while read -r name host port; do
    if port_open "$host" "$port"; then
      printf '%-8s up    %s:%s\n' "$name" "$host" "$port"
    else
      printf '%-8s down  %s:%s\n' "$name" "$host" "$port"
    fi
  done <<EOF
mariadb $MYSQL_HOST $MYSQL_PORT
redis $REDIS_HOST $REDIS_PORT
kafka $KAFKA_HOST $KAFKA_PORT
EOF
}

case "${1:-}" in
  packages) ensure_packages ;;
  test-packages) ensure_test_packages ;;
  up) ensure_packages; ensure_env; load_env; mariadb_up; redis_up; kafka_up; status ;;
  down) kafka_down; redis_down; mariadb_down ;;
  kafka-up) ensure_packages; kafka_up ;;
  kafka-down) kafka_down ;;
  mariadb-up) ensure_packages; ensure_env; load_env; mariadb_up ;;
  mariadb-down) mariadb_down ;;
  redis-up) ensure_packages; redis_up ;;
  redis-down) redis_down ;;
  status) status ;;
  *) die "usage: $0 up|down|status|packages|test-packages|{kafka,mariadb,redis}-{up,down}" ;;
esac
