#!/usr/bin/env bash
# Local infrastructure on loopback: MariaDB, Redis and Kafka (KRaft), each with its data
# and logs under $MOCKPAY_STATE_DIR (default .local/). Idempotent: a server that already
# answers at its address is used as it is, whether we started it or not.
#
#   scripts/infra.sh up|down|status|packages
#   scripts/infra.sh kafka-up|kafka-down|mariadb-up|mariadb-down|redis-up|redis-down
#       one server alone: tests run servers of their own (MOCKPAY_STATE_DIR and the port
#       set) and kill and restart them by pid
#   scripts/infra.sh kafka-node-up N       (start node N of the cluster again, and wait)
#   scripts/infra.sh lock-nodes-up|lock-nodes-down|lock-node-up N
#
# KAFKA_BROKERS=3 runs a 3-node Kafka cluster, LOCK_REDIS_NODES=3 three Redis lock nodes.
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
KAFKA_BROKERS=${KAFKA_BROKERS:-1}
KAFKA_STOP_SECONDS=${KAFKA_STOP_SECONDS:-30}
LOCK_REDIS_NODES=${LOCK_REDIS_NODES:-1}
LOCK_REDIS_HOST=${LOCK_REDIS_HOST:-127.0.0.1}
LOCK_REDIS_BASE_PORT=${LOCK_REDIS_BASE_PORT:-6380}
INFRA_WAIT_SECONDS=${INFRA_WAIT_SECONDS:-90}
DATABASES=${MOCKPAY_DATABASES:-"mockpay_payment mockpay_points mockpay_payment_test mockpay_points_test mockpay_bench"}

MARIADB_DIR=$STATE/mariadb
REDIS_DIR=$STATE/redis
KAFKA_DIR=$STATE/kafka
KAFKA_CLUSTER_DIR=$STATE/kafka-cluster
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
  # HAProxy fronts the payment replicas (PAYMENT_REPLICAS > 1) and points workers (POINTS_WORKERS > 1).
  if [ "${PAYMENT_REPLICAS:-1}" -gt 1 ] || [ "${POINTS_WORKERS:-1}" -gt 1 ]; then
    command -v haproxy >/dev/null || missing+=(haproxy)
  fi
  apt_install "${missing[@]}"
}

# Tools only the test suite uses: docker-compose validates deploy/compose.yaml (`config -q`).
ensure_test_packages() {
  command -v docker-compose >/dev/null || apt_install docker-compose
  command -v haproxy >/dev/null || apt_install haproxy  # the payment-replica tests
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

# ---------------------------------------------------------------- Redis lock nodes

# LOCK_REDIS_NODES=3: independent Redis servers that hold locks only (the quorum lock needs a
# majority of them); with 1 (the default) locks live on the main Redis and none start here.
lock_node_port() { echo $(( LOCK_REDIS_BASE_PORT + $1 - 1 )); }

lock_nodes_up() {
  local i
  for i in $(seq 1 "$LOCK_REDIS_NODES"); do lock_node_up "$i"; done
}

lock_node_up() {
  local i=$1 port dir
  port=$(lock_node_port "$i")
  dir=$STATE/redis-lock/node-$i
  if port_open "$LOCK_REDIS_HOST" "$port"; then
    log "redis lock node $i: already answering on $LOCK_REDIS_HOST:$port"
    return 0
  fi
  mkdir -p "$dir"
  log "redis lock node $i: starting on $LOCK_REDIS_HOST:$port"
  redis-server --bind "$LOCK_REDIS_HOST" --port "$port" --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes
  wait_for "redis lock node $i" "$INFRA_WAIT_SECONDS" redis-cli -h "$LOCK_REDIS_HOST" -p "$port" ping
}

# Whatever LOCK_REDIS_NODES says now: stop every lock node a pid file says we started.
lock_nodes_down() {
  local pidfile
  for pidfile in "$STATE"/redis-lock/node-*/redis.pid; do
    [ -f "$pidfile" ] || continue
    stop_pidfile "redis lock $(basename "$(dirname "$pidfile")")" "$pidfile"
  done
}

# ---------------------------------------------------------------- Kafka (KRaft)

# KAFKA_BROKERS=1: one broker+controller in $STATE/kafka, as always. KAFKA_BROKERS=3: three
# broker+controller nodes forming a 3-voter quorum in $STATE/kafka-cluster/node-N; node N
# listens on KAFKA_PORT+2(N-1) and its controller on KAFKA_CONTROLLER_PORT+2(N-1), so the
# defaults give 9092/9094/9096 and 9093/9095/9097.
kafka_node_port() { echo $(( KAFKA_PORT + 2 * ($1 - 1) )); }
kafka_node_controller_port() { echo $(( KAFKA_CONTROLLER_PORT + 2 * ($1 - 1) )); }
kafka_node_dir() {
  if [ "$KAFKA_BROKERS" -eq 1 ]; then echo "$KAFKA_DIR"; else echo "$KAFKA_CLUSTER_DIR/node-$1"; fi
}
kafka_bootstrap() {
  local i list=""
  for i in $(seq 1 "$KAFKA_BROKERS"); do list+="${list:+,}$KAFKA_HOST:$(kafka_node_port "$i")"; done
  echo "$list"
}
kafka_voters() {
  local i list=""
  for i in $(seq 1 "$KAFKA_BROKERS"); do
    list+="${list:+,}$i@$KAFKA_HOST:$(kafka_node_controller_port "$i")"
  done
  echo "$list"
}

# The jars are fetched once per version of infra/kafka/pom.xml: .complete holds the pom's
# checksum, so a changed pom (a new dependency) fetches again, adding to what is there.
kafka_libs() {
  local pom_sum
  pom_sum=$(cksum < infra/kafka/pom.xml | cut -d' ' -f1)
  if [ "$(cat "$KAFKA_LIBS/.complete" 2>/dev/null)" = "$pom_sum" ]; then return 0; fi
  log "kafka: assembling the broker's jars from Maven Central (once per pom version)"
  mkdir -p "$KAFKA_LIBS" "$STATE"
  mvn -q -B -f infra/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIBS" -DincludeScope=runtime >"$STATE/mvn.log" 2>&1 \
    || die "maven could not fetch Kafka's jars, see $STATE/mvn.log"
  echo "$pom_sum" > "$KAFKA_LIBS/.complete"
}

# kafka_jvm DIR: sets JVM to the java command line of a Kafka process logging under DIR/logs.
kafka_jvm() {
  JVM=(java -Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" -XX:+UseG1GC
    -Dlog4j.configuration="file:$ROOT/infra/kafka/log4j.properties"
    -Dkafka.logs.dir="$1/logs" -cp "$KAFKA_LIBS/*")
}

# kafka_tool CLASS ARGS...: one of Kafka's command-line tools, with a small heap.
kafka_tool() {
  java -Xmx256m -Dlog4j.configuration="file:$ROOT/infra/kafka/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$@"
}

kafka_cluster_id() {
  local file=$KAFKA_CLUSTER_DIR/cluster.id
  if [ "$KAFKA_BROKERS" -eq 1 ]; then file=$KAFKA_DIR/cluster.id; fi
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    kafka_tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 > "$file"
  fi
  cat "$file"
}

kafka_up() {
  kafka_libs
  local i
  for i in $(seq 1 "$KAFKA_BROKERS"); do kafka_node_start "$i"; done
  for i in $(seq 1 "$KAFKA_BROKERS"); do
    wait_for "kafka node $i" "$INFRA_WAIT_SECONDS" kafka_node_ready "$i"
  done
}

# kafka_node_start N: format node N's storage once, then start it (without waiting: the nodes
# of a quorum only become ready together).
kafka_node_start() {
  local i=$1 port cport dir replication min_isr
  port=$(kafka_node_port "$i")
  cport=$(kafka_node_controller_port "$i")
  dir=$(kafka_node_dir "$i")
  if port_open "$KAFKA_HOST" "$port"; then
    log "kafka node $i: already answering on $KAFKA_HOST:$port"
    return 0
  fi
  replication=$(( KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3 ))
  min_isr=$(( replication >= 3 ? 2 : 1 ))
  mkdir -p "$dir/data" "$dir/logs"
  sed -e "s#@HOST@#$KAFKA_HOST#g" -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$cport#g" \
      -e "s#@DATA@#$dir/data#g" -e "s#@NODE_ID@#$i#g" -e "s#@VOTERS@#$(kafka_voters)#g" \
      -e "s#@REPLICATION@#${KAFKA_REPLICATION_FACTOR:-$replication}#g" \
      -e "s#@MIN_ISR@#${KAFKA_MIN_INSYNC_REPLICAS:-$min_isr}#g" \
      -e "s#@PARTITIONS@#${KAFKA_TOPIC_PARTITIONS:-6}#g" \
      infra/kafka/server.properties > "$dir/server.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "kafka node $i: formatting storage"
    kafka_tool kafka.tools.StorageTool format -t "$(kafka_cluster_id)" \
      -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
      || die "kafka storage format failed, see $dir/logs/format.log"
  fi
  log "kafka node $i: starting on $KAFKA_HOST:$port (controller $cport)"
  : >"$dir/logs/stdout.log"
  kafka_jvm "$dir"
  spawn "$dir/kafka.pid" "$dir/logs/stdout.log" "${JVM[@]}" kafka.Kafka "$dir/server.properties"
}

# Ready: answering, and when we started it, past its start-up (a node answers its port
# before it has joined the quorum). One that was already there is used as it is.
kafka_node_ready() {
  local dir
  dir=$(kafka_node_dir "$1")
  port_open "$KAFKA_HOST" "$(kafka_node_port "$1")" || return 1
  [ -f "$dir/kafka.pid" ] || return 0
  grep -q "Kafka Server started" "$dir/logs/stdout.log"
}

# Whatever KAFKA_BROKERS says now: stop the single broker and every cluster node we started.
# The nodes of a cluster stop together: stopped one by one, the last would wait for a
# quorum that is gone before it gives up its partitions. A node still shutting down after
# KAFKA_STOP_SECONDS is killed; its log is recovered on the next start.
kafka_down() {
  local pidfile
  for pidfile in "$KAFKA_DIR/kafka.pid" "$KAFKA_CLUSTER_DIR"/node-*/kafka.pid; do
    [ -f "$pidfile" ] || continue
    stop_pidfile "kafka $(basename "$(dirname "$pidfile")")" "$pidfile" "$KAFKA_STOP_SECONDS" &
  done
  wait
}

# The controller quorum's leader and the under-replicated partitions, as Kafka's own admin
# commands report them (the same classes as kafka-metadata-quorum.sh and kafka-topics.sh).
kafka_cluster_status() {
  local bootstrap leader under
  bootstrap=$(kafka_bootstrap)
  leader=$(kafka_tool org.apache.kafka.tools.MetadataQuorumCommand \
    --bootstrap-server "$bootstrap" describe --status 2>/dev/null | awk -F': *' '$1=="LeaderId" {print $2}')
  printf '%-17s %s\n' "quorum leader" "node ${leader:-unknown: no majority of controllers answers}"
  under=$(kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --describe --under-replicated-partitions 2>/dev/null | grep -c 'Partition:' || true)
  printf '%-17s %s\n' "under-replicated" "${under:-unknown} partition(s)"
  if [ "${under:-0}" != 0 ]; then
    kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
      --describe --under-replicated-partitions 2>/dev/null | sed 's/^/  /'
  fi
}

# ---------------------------------------------------------------- commands

line() {
  local name=$1 host=$2 port=$3 state
  if port_open "$host" "$port"; then state=up; else state=down; fi
  printf '%-17s %-5s %s:%s\n' "$name" "$state" "$host" "$port"
}

status() {
  local i
  line mariadb "$MYSQL_HOST" "$MYSQL_PORT"
  line redis "$REDIS_HOST" "$REDIS_PORT"
  if [ "$LOCK_REDIS_NODES" -gt 1 ]; then
    for i in $(seq 1 "$LOCK_REDIS_NODES"); do
      line "redis-lock-$i" "$LOCK_REDIS_HOST" "$(lock_node_port "$i")"
    done
  fi
  if [ "$KAFKA_BROKERS" -eq 1 ]; then
    line kafka "$KAFKA_HOST" "$KAFKA_PORT"
  else
    for i in $(seq 1 "$KAFKA_BROKERS"); do
      line "kafka-node-$i" "$KAFKA_HOST" "$(kafka_node_port "$i")"
    done
    kafka_cluster_status
  fi
}

case "${1:-}" in
  packages) ensure_packages ;;
  test-packages) ensure_test_packages ;;
  up)
    ensure_packages; ensure_env; load_env; mariadb_up; redis_up
    if [ "$LOCK_REDIS_NODES" -gt 1 ]; then lock_nodes_up; fi
    kafka_up; status ;;
  down) kafka_down; lock_nodes_down; redis_down; mariadb_down ;;
  kafka-up) ensure_packages; kafka_up ;;
  kafka-down) kafka_down ;;
  mariadb-up) ensure_packages; ensure_env; load_env; mariadb_up ;;
  mariadb-down) mariadb_down ;;
  redis-up) ensure_packages; redis_up ;;
  redis-down) redis_down ;;
  kafka-node-up)
    kafka_node_start "${2:?node number}"
    wait_for "kafka node $2" "$INFRA_WAIT_SECONDS" kafka_node_ready "$2" ;;
  lock-nodes-up) ensure_packages; lock_nodes_up ;;
  lock-nodes-down) lock_nodes_down ;;
  lock-node-up) lock_node_up "${2:?node number}" ;;
  status) status ;;
  *) die "usage: $0 up|down|status|packages|test-packages|{kafka,mariadb,redis}-{up,down}|kafka-node-up N|lock-nodes-up|lock-nodes-down|lock-node-up N" ;;
esac
