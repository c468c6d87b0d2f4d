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
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
POM="$SCRIPT_DIR/pom.xml"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
# Small, fast-starting JVMs for the admin helper; the broker gets its own options below.
TOOL_JAVA_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2-tools.xml")

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

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

require_java() {
    command -v java >/dev/null || die "java not found; install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
    local version major
    version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
    major=${version%%.*}
    [[ $major == 1 ]] && major=$(cut -d. -f2 <<<"$version")
    [[ $major =~ ^[0-9]+$ && $major -ge 17 ]] || die "java $version found; Kafka 4 needs Java 17 or newer"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

libs_complete() { [[ -f $KAFKA_LIBS/.complete && $(<"$KAFKA_LIBS/.complete") == "$(pom_hash)" ]]; }

# Downloads into a temporary folder and renames it, under a lock, so concurrent callers (a test
# broker, a console tool) never run from a half-copied folder.
cmd_fetch() {
    require_java
    libs_complete && return 0
    exec 9>"$KAFKA_LIBS.lock"
    flock 9
    if ! libs_complete; then
        command -v mvn >/dev/null || die "mvn not found; install Maven (Debian: apt-get install maven) to fetch the Kafka jars"
        local staging="$KAFKA_LIBS.partial.$$" started=$SECONDS
        log "fetching Kafka jars into $KAFKA_LIBS"
        rm -rf "$staging"
        # Maven's output is kept for a failure only: -q still prints colour codes on success.
        if ! mvn -q -B -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
            "-DoutputDirectory=$staging" >"$staging.log" 2>&1; then
            cat "$staging.log" >&2
            rm -rf "$staging" "$staging.log"
            die "mvn could not fetch the jars (output above)"
        fi
        rm -f "$staging.log"
        pom_hash >"$staging/.complete"
        rm -rf "$KAFKA_LIBS"
        mv "$staging" "$KAFKA_LIBS"
        log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $((SECONDS - started)) s"
    fi
    exec 9>&-
}

# --- helpers ----------------------------------------------------------------------------------

run_admin() {
    local quiet=$1
    shift
    java "${TOOL_JAVA_OPTS[@]}" "-Dfraudstream.tools.log.level=$quiet" -cp "$KAFKA_LIBS/*" \
        "$SCRIPT_DIR/LocalAdmin.java" "$@"
}

# Alive and not a zombie: a broker whose parent never reaps it still answers kill -0.
is_alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# Only a process started from *our* server.properties may be signalled: the pid may have been
# reused by anything since the file was written.
is_our_broker() {
    local pid=$1 args
    is_alive "$pid" || return 1
    args=$(ps -ww -o args= -p "$pid" 2>/dev/null) || return 1
    [[ $args == *kafka.Kafka* && $args == *"$PROPS"* ]]
}

# Prints the pid of our running broker, or fails (and drops a stale pid file).
running_pid() {
    [[ -s $PID_FILE ]] || return 1
    local pid
    pid=$(<"$PID_FILE")
    if [[ $pid =~ ^[0-9]+$ ]] && is_our_broker "$pid"; then
        echo "$pid"
        return 0
    fi
    log "removing stale pid file ($pid is not our broker)"
    rm -f "$PID_FILE"
    return 1
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

topic_names() {
    echo "${FRAUDSTREAM_KAFKA__TOPICS__TRANSACTIONS:-transactions}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__ALERTS:-fraud-alerts}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__SCORES:-fraud-scores}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__LABELS:-transaction-labels}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__DEAD_LETTERS:-transactions-dlq}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__RETRAIN_REQUESTS:-retrain-requests}"
    echo "${FRAUDSTREAM_KAFKA__TOPICS__MODEL_UPDATES:-model-updates}"
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
    # The optional SASL listener only adds to these lines; without KAFKA_SASL_PORT they are empty.
    local sasl_listener="" sasl_protocol=""
    if [[ -n $KAFKA_SASL_PORT ]]; then
        sasl_listener=",SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT"
        sasl_protocol=",SASL_PLAINTEXT:SASL_PLAINTEXT"
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
    [[ -z $KAFKA_SASL_PORT ]] || write_sasl_properties
}

# SCRAM on the SASL listener only: the controller and inter-broker traffic stay on PLAINTEXT, so
# the broker needs no credentials of its own. Users live in the KRaft metadata log; a login module
# per mechanism replaces a JAAS file (it holds no secret: the broker verifies, it never logs in).
write_sasl_properties() {
    [[ $KAFKA_SASL_PORT =~ ^[0-9]+$ ]] || die "KAFKA_SASL_PORT must be a port number, not '$KAFKA_SASL_PORT'"
    local mechanism
    {
        echo "# The opt-in SASL listener (KAFKA_SASL_PORT)."
        echo "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512"
        for mechanism in scram-sha-256 scram-sha-512; do
            echo "listener.name.sasl_plaintext.$mechanism.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
        done
    } >>"$PROPS"
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

# setsid detaches the broker from the caller's session and process group, so a Ctrl-C in the
# terminal or a test runner ending its group leaves it alone; `broker.sh stop` is the way to end it.
# The inner bash writes its own pid and then becomes java, so the pid file names the JVM.
launch_broker() {
    rm -f "$PID_FILE"
    # shellcheck disable=SC2016,SC2086  # $$ is the inner shell's; heap opts are meant to split.
    nohup setsid bash -c 'echo $$ >"$0" && exec "$@"' "$PID_FILE" \
        java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -Djava.awt.headless=true "-Dkafka.logs.dir=$LOG_DIR" \
        "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2-broker.xml" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$PROPS" </dev/null >>"$LOG_DIR/broker.out" 2>&1 8>&- &
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
    local port
    for port in "$KAFKA_PORT" "$CONTROLLER_PORT" ${KAFKA_SASL_PORT:+"$KAFKA_SASL_PORT"}; do
        port_in_use "$port" && die "port $port on 127.0.0.1 is taken by another process; set KAFKA_PORT/CONTROLLER_PORT/KAFKA_SASL_PORT"
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
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if is_alive "$pid"; then
        log "broker pid $pid still running after ${KAFKA_STOP_TIMEOUT} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while is_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        is_alive "$pid" && die "broker pid $pid survived SIGKILL"
    fi
    rm -f "$PID_FILE"
    log "stopped broker pid $pid"
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
# must not inherit the lock (see launch_broker's 8>&-).
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
