#!/usr/bin/env bash
# A local, single-node Apache Kafka (KRaft, broker + controller in one JVM) for development and
# integration tests, without Docker: the jars come from Maven Central through deploy/kafka/pom.xml.
#
# usage: deploy/kafka/broker.sh fetch|start|stop|status|create-topics|clean
#
# Environment (all optional):
#   KAFKA_LOCAL          state folder: server.properties, data/, logs/, broker.pid (.local/kafka)
#   KAFKA_LIBS           jar folder, shareable between brokers ($KAFKA_LOCAL/libs)
#   KAFKA_PORT           client listener on 127.0.0.1 (9092)
#   CONTROLLER_PORT      KRaft controller listener on 127.0.0.1 (9093)
#   KAFKA_SASL_PORT      when set, adds a SASL_PLAINTEXT listener on 127.0.0.1 with SCRAM-SHA-256
#                        and SCRAM-SHA-512 (unset: none). PLAINTEXT stays on KAFKA_PORT for the
#                        broker's own tooling; create users with deploy/bin/kafka-configs.
#   KAFKA_SASL_SSL_PORT  when set, adds a SASL_SSL listener on 127.0.0.1: the same SCRAM users,
#                        inside TLS. Needs the two below; the certificate's SAN must name what
#                        clients connect to (IP:127.0.0.1), as clients verify the host name.
#   KAFKA_SSL_KEYSTORE   PKCS12 file with the broker's private key and certificate chain. Yours to
#                        provide (your CA, or a throwaway one for tests): none is kept in the repo.
#   KAFKA_SSL_KEYSTORE_PASSWORD  its password; it goes into server.properties, which only the
#                        owner may read.
#   KAFKA_SSL_CLIENT_CA  optional PEM file of the CA(s) that sign client certificates: when set,
#                        the SASL_SSL listener also requires one (mutual TLS).
#   KAFKA_START_TIMEOUT  seconds to wait for the broker to answer (60)
#   KAFKA_STOP_TIMEOUT   seconds to wait for a clean shutdown before SIGKILL (30)
#   KAFKA_HEAP_OPTS      broker heap (-Xms256m -Xmx768m)
#   FRAUDSTREAM_KAFKA__PARTITIONS, FRAUDSTREAM_KAFKA__TOPICS__<NAME>: as in stream_app/settings.py
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
KAFKA_LOCAL=${KAFKA_LOCAL:-$REPO_ROOT/.local/kafka}
KAFKA_PORT=${KAFKA_PORT:-9092}
CONTROLLER_PORT=${CONTROLLER_PORT:-9093}
KAFKA_SASL_PORT=${KAFKA_SASL_PORT:-}
KAFKA_SASL_SSL_PORT=${KAFKA_SASL_SSL_PORT:-}
KAFKA_SSL_KEYSTORE=${KAFKA_SSL_KEYSTORE:-}
KAFKA_SSL_KEYSTORE_PASSWORD=${KAFKA_SSL_KEYSTORE_PASSWORD:-}
KAFKA_SSL_CLIENT_CA=${KAFKA_SSL_CLIENT_CA:-}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
POM="$SCRIPT_DIR/pom.xml"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
# Small, fast-starting JVMs for the admin helper; the broker gets its own options below.
TOOL_JAVA_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2-tools.xml")

SERVICE_LOG_NAME=broker.sh
# shellcheck source=../lib/jvm-service.sh
source "$SCRIPT_DIR/../lib/jvm-service.sh"

# Paths are made absolute once, because the pid check matches the broker's command line.
resolve_paths() {
    mkdir -p "$KAFKA_LOCAL"
    KAFKA_LOCAL=$(cd "$KAFKA_LOCAL" && pwd)
    KAFKA_LIBS=${KAFKA_LIBS:-$KAFKA_LOCAL/libs}
    mkdir -p "$(dirname "$KAFKA_LIBS")"
    KAFKA_LIBS=$(cd "$(dirname "$KAFKA_LIBS")" && pwd)/$(basename "$KAFKA_LIBS")
    PROPS="$KAFKA_LOCAL/server.properties"
    PID_FILE="$KAFKA_LOCAL/broker.pid"
    DATA_DIR="$KAFKA_LOCAL/data"
    LOG_DIR="$KAFKA_LOCAL/logs"
}

# --- prerequisites and jars -------------------------------------------------------------------

cmd_fetch() {
    require_java "Kafka 4"
    fetch_jars "$KAFKA_LIBS" "$POM" Kafka -DincludeScope=runtime
}

# --- helpers ----------------------------------------------------------------------------------

run_admin() {
    local quiet=$1
    shift
    java "${TOOL_JAVA_OPTS[@]}" "-Dfraudstream.tools.log.level=$quiet" -cp "$KAFKA_LIBS/*" \
        "$SCRIPT_DIR/LocalAdmin.java" "$@"
}

# Only a JVM running kafka.Kafka from our server.properties counts as our broker.
is_our_broker() { is_own_process "$1" kafka.Kafka "$PROPS"; }

running_pid() { own_pid "$PID_FILE" kafka.Kafka "$PROPS" broker; }

topic_names() {
    echo "${FRAUDSTREAM_KAFKA__TOPICS__TRANSACTIONS:-transactions}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__ALERTS:-fraud-alerts}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__SCORES:-fraud-scores}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__LABELS:-transaction-labels}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__DEAD_LETTERS:-transactions-dlq}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__RETRAIN_REQUESTS:-retrain-requests}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__MODEL_UPDATES:-model-updates}"
    # compacted: only each rule's latest value (or its deletion) matters
    echo "${FRAUDSTREAM_KAFKA__TOPICS__RULES:-fraud-rules}:compact"
}

show_log_tail() {
    local file
    for file in "$LOG_DIR/server.log" "$LOG_DIR/broker.out"; do
        [[ -s $file ]] || continue
        log "last lines of $file:"
        tail -n 25 "$file" >&2
    done
}

# --- start ------------------------------------------------------------------------------------

write_server_properties() {
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    # The optional SASL listeners only add to these lines; without them they are empty.
    local sasl_listener="" sasl_protocol=""
    if [[ -n $KAFKA_SASL_PORT ]]; then
        sasl_listener=",SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
        sasl_protocol=",SASL_PLAINTEXT:SASL_PLAINTEXT"
    fi
    if [[ -n $KAFKA_SASL_SSL_PORT ]]; then
        sasl_listener+=",SASL_SSL://127.0.0.1:$KAFKA_SASL_SSL_PORT"
        sasl_protocol+=",SASL_SSL:SASL_SSL"
    fi
    cat >"$PROPS" <<EOF
# Written by deploy/kafka/broker.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT$sasl_listener,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT$sasl_listener
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT$sasl_protocol
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=3
# Our tooling creates every topic explicitly; a typo in a topic name should fail, not create one.
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# One member per group locally: no reason to wait for more to join.
group.initial.rebalance.delay.ms=0
EOF
    chmod 600 "$PROPS" # it may hold the keystore password
    [[ -z $KAFKA_SASL_PORT && -z $KAFKA_SASL_SSL_PORT ]] || write_sasl_properties
}

# SCRAM on the SASL listeners only: the controller and inter-broker traffic stay on PLAINTEXT, so
# the broker needs no credentials of its own. Users live in the KRaft metadata log, shared by both
# listeners; a login module per mechanism replaces a JAAS file (it holds no secret: the broker
# verifies, it never logs in).
write_sasl_properties() {
    {
        if [[ -n $KAFKA_SASL_PORT ]]; then
            echo "# The opt-in SASL listener (KAFKA_SASL_PORT)."
        else
            echo "# The opt-in SASL_SSL listener (KAFKA_SASL_SSL_PORT)."
        fi
        echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"
        [[ -z $KAFKA_SASL_PORT ]] || scram_login_modules sasl_plaintext
        [[ -z $KAFKA_SASL_SSL_PORT ]] || tls_listener_properties
    } >>"$PROPS"
}

scram_login_modules() {
    local listener=$1 mechanism
    for mechanism in scram-sha-256 scram-sha-512; do
        echo "listener.name.$listener.$mechanism.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    done
}

# The key store is set on the SASL_SSL listener only (prefixed settings): PLAINTEXT stays plain.
tls_listener_properties() {
    local prefix=listener.name.sasl_ssl
    [[ -z $KAFKA_SASL_PORT ]] || echo "# The opt-in SASL_SSL listener (KAFKA_SASL_SSL_PORT)."
    scram_login_modules sasl_ssl
    echo "$prefix.ssl.keystore.type=PKCS12"
    echo "$prefix.ssl.keystore.location=$KAFKA_SSL_KEYSTORE"
    # java.util.Properties reads a backslash as an escape, so each is doubled to stay literal.
    echo "$prefix.ssl.keystore.password=${KAFKA_SSL_KEYSTORE_PASSWORD//\\/\\\\}"
    if [[ -n $KAFKA_SSL_CLIENT_CA ]]; then
        echo "$prefix.ssl.truststore.type=PEM"
        echo "$prefix.ssl.truststore.location=$KAFKA_SSL_CLIENT_CA"
        echo "$prefix.ssl.client.auth=required"
    fi
}

# Checked before the JVM starts: there, a missing file or password is a stack trace in a log.
check_listener_settings() {
    local name
    for name in KAFKA_PORT CONTROLLER_PORT KAFKA_SASL_PORT KAFKA_SASL_SSL_PORT; do
        [[ -z ${!name} || ${!name} =~ ^[0-9]+$ ]] || die "$name must be a port number, not '${!name}'"
    done
    [[ -n $KAFKA_SASL_SSL_PORT ]] || return 0
    [[ -n $KAFKA_SSL_KEYSTORE ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE, a PKCS12 file with the broker's key and certificate"
    [[ -f $KAFKA_SSL_KEYSTORE && -r $KAFKA_SSL_KEYSTORE ]] || die "KAFKA_SSL_KEYSTORE '$KAFKA_SSL_KEYSTORE' is not a readable file"
    [[ -n $KAFKA_SSL_KEYSTORE_PASSWORD ]] || die "KAFKA_SASL_SSL_PORT needs KAFKA_SSL_KEYSTORE_PASSWORD"
    [[ $KAFKA_SSL_KEYSTORE_PASSWORD != *$'\n'* ]] || die "KAFKA_SSL_KEYSTORE_PASSWORD must be a single line"
    [[ -z $KAFKA_SSL_CLIENT_CA || -r $KAFKA_SSL_CLIENT_CA ]] || die "KAFKA_SSL_CLIENT_CA '$KAFKA_SSL_CLIENT_CA' is not a readable file"
    # The broker resolves relative paths from its own working directory.
    KAFKA_SSL_KEYSTORE=$(readlink -f "$KAFKA_SSL_KEYSTORE")
    [[ -z $KAFKA_SSL_CLIENT_CA ]] || KAFKA_SSL_CLIENT_CA=$(readlink -f "$KAFKA_SSL_CLIENT_CA")
}

format_storage() {
    [[ -f $DATA_DIR/meta.properties ]] && return 0
    local cluster_id_file="$KAFKA_LOCAL/cluster.id"
    if [[ ! -s $cluster_id_file ]]; then
        java "${TOOL_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid >"$cluster_id_file"
    fi
    # No --standalone: the quorum is the static controller.quorum.voters above.
    java "${TOOL_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
        -t "$(<"$cluster_id_file")" -c "$PROPS" >&2
}

# In the background, detached from the caller (see launch_detached); the pid file names the JVM.
launch_broker() {
    # shellcheck disable=SC2086  # the heap options are meant to split into words
    launch_detached "$PID_FILE" "$LOG_DIR/broker.out" \
        java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true "-Dkafka.logs.dir=$LOG_DIR" \
        "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2-broker.xml" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$PROPS"
    local deadline=$((SECONDS + 10))
    until [[ -s $PID_FILE ]]; do
        ((SECONDS < deadline)) || die "the broker process did not start (see $LOG_DIR/broker.out)"
        sleep 0.05
    done
}

wait_until_ready() {
    local pid=$1 status=0
    run_admin ERROR await "$BOOTSTRAP" "$KAFKA_START_TIMEOUT" "$pid" || status=$?
    ((status == 0)) && return 0
    show_log_tail
    if is_our_broker "$pid"; then
        log "stopping the broker that did not answer (raise KAFKA_START_TIMEOUT on a slow machine)"
        cmd_stop
    fi
    rm -f "$PID_FILE"
    die "broker on $BOOTSTRAP did not become ready"
}

cmd_start() {
    local pid
    if pid=$(running_pid); then
        if run_admin ERROR await "$BOOTSTRAP" "$KAFKA_START_TIMEOUT" "$pid"; then
            log "already running (pid $pid) on $BOOTSTRAP"
            return 0
        fi
        die "broker pid $pid is running but does not answer on $BOOTSTRAP; try: $0 stop"
    fi
    check_listener_settings
    local port
    for port in "$KAFKA_PORT" "$CONTROLLER_PORT" ${KAFKA_SASL_PORT:+"$KAFKA_SASL_PORT"} \
        ${KAFKA_SASL_SSL_PORT:+"$KAFKA_SASL_SSL_PORT"}; do
        port_in_use "$port" && die "port $port on 127.0.0.1 is taken by another process; set KAFKA_PORT/CONTROLLER_PORT/KAFKA_SASL_PORT/KAFKA_SASL_SSL_PORT"
    done
    cmd_fetch
    write_server_properties
    format_storage
    local started=$SECONDS
    launch_broker
    pid=$(<"$PID_FILE")
    log "started broker pid $pid, waiting up to ${KAFKA_START_TIMEOUT} s for $BOOTSTRAP"
    wait_until_ready "$pid"
    log "broker ready on $BOOTSTRAP after $((SECONDS - started)) s (logs: $LOG_DIR)"
    cmd_create_topics
}

# --- the other commands -----------------------------------------------------------------------

cmd_create_topics() {
    local partitions=${FRAUDSTREAM_KAFKA__PARTITIONS:-3}
    [[ $partitions =~ ^[1-9][0-9]*$ ]] || die "FRAUDSTREAM_KAFKA__PARTITIONS must be a positive integer, not '$partitions'"
    cmd_fetch
    local topics
    mapfile -t topics < <(topic_names)
    run_admin WARN create-topics "$BOOTSTRAP" "$partitions" 1 "${topics[@]}"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "not running"
        return 0
    fi
    stop_process "$PID_FILE" "$pid" "$KAFKA_STOP_TIMEOUT" broker
}

cmd_status() {
    local pid
    if ! pid=$(running_pid); then
        echo "not running"
        return 1
    fi
    if run_admin ERROR await "$BOOTSTRAP" 5 "$pid"; then
        echo "running (pid $pid), answering on $BOOTSTRAP"
        return 0
    fi
    echo "running (pid $pid) but not answering on $BOOTSTRAP"
    return 1
}

# Data, logs and the cluster id go; the jars stay.
cmd_clean() {
    cmd_stop
    rm -rf "$DATA_DIR" "$LOG_DIR" "$PROPS" "$KAFKA_LOCAL/cluster.id"
    log "removed broker data and logs under $KAFKA_LOCAL"
}

# Serialises start/stop/clean on one state folder: two test sessions starting the same broker at
# once would otherwise both launch one and leave the pid file naming the loser. The broker itself
# must not inherit the lock (launch_detached closes fd 8).
lock_state() {
    exec 8>"$KAFKA_LOCAL/.broker.lock"
    flock 8
}

main() {
    local command=${1:-}
    resolve_paths
    case $command in
        fetch) cmd_fetch ;;
        start) lock_state && cmd_start ;;
        stop) lock_state && cmd_stop ;;
        status) cmd_status ;;
        create-topics) cmd_create_topics ;;
        clean) lock_state && cmd_clean ;;
        *)
            echo "usage: $0 fetch|start|stop|status|create-topics|clean" >&2
            exit 2
            ;;
    esac
}

main "$@"
