#!/usr/bin/env bash
# A local S3-compatible server (s3proxy) on 127.0.0.1, for development and the object-store
# integration tests: boto3 talks the same S3 API over HTTP as it does to AWS, without Docker.
# The jar comes from Maven Central through deploy/s3/pom.xml (a JDK 17+ and Maven are needed).
#
# usage: deploy/s3/s3proxy.sh fetch|run|start|stop|status|env
#   fetch   download the jar once
#   run     run in the foreground (the process becomes java): for a test fixture or a supervisor
#   start   run in the background and wait until it answers; `stop` ends it
#   env     print the FRAUDSTREAM_STORE__* exports that point the project at it:
#           eval "$(deploy/s3/s3proxy.sh env)"
#
# Environment (all optional):
#   S3PROXY_LOCAL          state folder: s3proxy.conf, credentials, data/, logs, pid (.local/s3proxy)
#   S3PROXY_LIBS           jar folder, shared by every state folder (.local/s3proxy/libs)
#   S3PROXY_PORT           HTTP port on 127.0.0.1 (9000)
#   S3PROXY_BACKEND        filesystem (objects under $S3PROXY_LOCAL/data) or transient (in memory)
#   S3PROXY_BUCKET         bucket made on start with the filesystem backend (fraudstream)
#   S3PROXY_IDENTITY       access key id; with S3PROXY_CREDENTIAL, overrides the key pair that
#   S3PROXY_CREDENTIAL     is generated at random on the first start and kept in $S3PROXY_LOCAL
#   S3PROXY_START_TIMEOUT  seconds to wait for the server to answer (60)
#   S3PROXY_STOP_TIMEOUT   seconds to wait for a clean exit before SIGKILL (15)
#   S3PROXY_HEAP_OPTS      JVM heap (-Xmx256m)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
S3PROXY_LOCAL=${S3PROXY_LOCAL:-$REPO_ROOT/.local/s3proxy}
S3PROXY_LIBS=${S3PROXY_LIBS:-$REPO_ROOT/.local/s3proxy/libs}
S3PROXY_PORT=${S3PROXY_PORT:-9000}
S3PROXY_BACKEND=${S3PROXY_BACKEND:-filesystem}
S3PROXY_BUCKET=${S3PROXY_BUCKET:-fraudstream}
S3PROXY_START_TIMEOUT=${S3PROXY_START_TIMEOUT:-60}
S3PROXY_STOP_TIMEOUT=${S3PROXY_STOP_TIMEOUT:-15}
S3PROXY_HEAP_OPTS=${S3PROXY_HEAP_OPTS:--Xmx256m}
POM="$SCRIPT_DIR/pom.xml"
ENDPOINT="http://127.0.0.1:$S3PROXY_PORT"

SERVICE_LOG_NAME=s3proxy.sh
# shellcheck source=../lib/jvm-service.sh
source "$SCRIPT_DIR/../lib/jvm-service.sh"

# Absolute paths, because the pid check matches them against the server's command line.
resolve_paths() {
    mkdir -p "$S3PROXY_LOCAL" "$S3PROXY_LIBS"
    S3PROXY_LOCAL=$(cd "$S3PROXY_LOCAL" && pwd)
    S3PROXY_LIBS=$(cd "$S3PROXY_LIBS" && pwd)
    CONF="$S3PROXY_LOCAL/s3proxy.conf"
    CREDENTIALS="$S3PROXY_LOCAL/credentials"
    DATA_DIR="$S3PROXY_LOCAL/data"
    PID_FILE="$S3PROXY_LOCAL/s3proxy.pid"
    LOG_FILE="$S3PROXY_LOCAL/s3proxy.log"
}

jar_path() { find "$S3PROXY_LIBS" -maxdepth 1 -name 's3proxy-*.jar' -print -quit; }

# -C: a checksum mismatch fails the download instead of warning.
cmd_fetch() {
    require_java "s3proxy 4"
    fetch_jars "$S3PROXY_LIBS" "$POM" s3proxy -C
}

# A random key pair on first use, kept beside the data so `env` can hand it out later.
load_credentials() {
    if [[ -n ${S3PROXY_IDENTITY:-} && -n ${S3PROXY_CREDENTIAL:-} ]]; then
        return 0
    fi
    if [[ ! -s $CREDENTIALS ]]; then
        (
            umask 077
            printf 'local-%s\n%s\n' "$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" \
                "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" >"$CREDENTIALS"
        )
    fi
    { read -r S3PROXY_IDENTITY && read -r S3PROXY_CREDENTIAL; } <"$CREDENTIALS"
}

# The secret is in this file, so only the owner may read it.
write_conf() {
    load_credentials
    local storage
    case $S3PROXY_BACKEND in
        filesystem)
            mkdir -p "$DATA_DIR/$S3PROXY_BUCKET" # a folder under the base directory is a bucket
            storage="jclouds.filesystem.basedir=$DATA_DIR"
            ;;
        transient) storage="# objects are kept in memory and lost when the server stops" ;;
        *) die "S3PROXY_BACKEND must be filesystem or transient, not '$S3PROXY_BACKEND'" ;;
    esac
    (
        umask 077
        cat >"$CONF" <<EOF
# Written by deploy/s3/s3proxy.sh on every start; edit the script, not this file.
s3proxy.endpoint=$ENDPOINT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3PROXY_IDENTITY
s3proxy.credential=$S3PROXY_CREDENTIAL
jclouds.provider=$S3PROXY_BACKEND
jclouds.identity=unused
jclouds.credential=unused
$storage
EOF
    )
}

set_java_command() {
    # shellcheck disable=SC2206  # the heap options are meant to split into words
    JAVA_COMMAND=(java $S3PROXY_HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true
        -jar "$(jar_path)" --properties "$CONF")
}

running_pid() { own_pid "$PID_FILE" s3proxy "$CONF" s3proxy; }

# Any HTTP status line means Jetty is serving; the request is unsigned, so it is refused (403).
# shellcheck disable=SC2016  # $0 is the inner shell's: the port passed after the script
answers_http() {
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" &&
        printf "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" >&3 &&
        head -c 5 <&3 | grep -q "^HTTP/"' "$S3PROXY_PORT" 2>/dev/null
}

cmd_run() {
    port_in_use "$S3PROXY_PORT" && die "port $S3PROXY_PORT on 127.0.0.1 is taken; set S3PROXY_PORT"
    cmd_fetch
    write_conf
    set_java_command
    exec "${JAVA_COMMAND[@]}"
}

cmd_start() {
    local pid
    if pid=$(running_pid); then
        log "already running (pid $pid) on $ENDPOINT"
        return 0
    fi
    port_in_use "$S3PROXY_PORT" && die "port $S3PROXY_PORT on 127.0.0.1 is taken; set S3PROXY_PORT"
    cmd_fetch
    write_conf
    set_java_command
    launch_detached "$PID_FILE" "$LOG_FILE" "${JAVA_COMMAND[@]}"
    local deadline=$((SECONDS + S3PROXY_START_TIMEOUT))
    until [[ -s $PID_FILE ]] && answers_http; do
        if ((SECONDS >= deadline)) || { [[ -s $PID_FILE ]] && ! is_alive "$(<"$PID_FILE")"; }; then
            tail -n 25 "$LOG_FILE" >&2 || true
            cmd_stop
            die "s3proxy did not answer on $ENDPOINT within ${S3PROXY_START_TIMEOUT} s (log above)"
        fi
        sleep 0.2
    done
    log "s3proxy pid $(<"$PID_FILE") ready on $ENDPOINT ($S3PROXY_BACKEND backend, logs: $LOG_FILE)"
}

cmd_stop() {
    local pid
    pid=$(running_pid) || { log "not running"; return 0; }
    stop_process "$PID_FILE" "$pid" "$S3PROXY_STOP_TIMEOUT" s3proxy
}

cmd_status() {
    local pid
    if pid=$(running_pid) && answers_http; then
        echo "running (pid $pid), answering on $ENDPOINT"
        return 0
    fi
    echo "not running"
    return 1
}

cmd_env() {
    load_credentials
    printf 'export FRAUDSTREAM_STORE__URI=s3://%s/local\n' "$S3PROXY_BUCKET"
    printf 'export FRAUDSTREAM_STORE__S3_ENDPOINT_URL=%s\n' "$ENDPOINT"
    printf 'export FRAUDSTREAM_STORE__S3_ACCESS_KEY_ID=%s\n' "$S3PROXY_IDENTITY"
    printf 'export FRAUDSTREAM_STORE__S3_SECRET_ACCESS_KEY=%s\n' "$S3PROXY_CREDENTIAL"
}

main() {
    local command=${1:-}
    resolve_paths
    case $command in
        fetch) cmd_fetch ;;
        run) cmd_run ;;
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        env) cmd_env ;;
        *)
            echo "usage: $0 fetch|run|start|stop|status|env" >&2
            exit 2
            ;;
    esac
}

main "$@"
