#!/usr/bin/env bash
# podman's Docker-compatible API (`podman system service`) on a unix socket of this checkout, so
# Docker clients (the docker Python package, testcontainers) can drive podman: the test suite's
# broker fixture uses it with the local broker image (docs/containers.md).
#
# usage: deploy/containers/podman-service.sh start|stop|status|env
#   env prints the exports a Docker client needs: eval "$(deploy/containers/podman-service.sh env)"
#
# Environment (optional): PODMAN_SOCKET (.local/podman/podman.sock), PODMAN_START_TIMEOUT (30 s)
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
REPO_ROOT=$(cd "$CONTAINERS_DIR/../.." && pwd)
PODMAN_SOCKET=${PODMAN_SOCKET:-$REPO_ROOT/.local/podman/podman.sock}
PODMAN_START_TIMEOUT=${PODMAN_START_TIMEOUT:-30}
STATE_DIR=$(dirname "$PODMAN_SOCKET")
PID_FILE="$STATE_DIR/service.pid"
LOG_FILE="$STATE_DIR/service.log"

SERVICE_LOG_NAME=podman-service.sh
# shellcheck source=../lib/jvm-service.sh
source "$CONTAINERS_DIR/../lib/jvm-service.sh" # pid-file helpers (not only for JVMs)

# The API answers GET /_ping with "OK", as Docker's does.
answers() { [[ $(curl -s --max-time 3 --unix-socket "$PODMAN_SOCKET" http://d/_ping 2>/dev/null) == OK ]]; }

running_pid() { own_pid "$PID_FILE" "system service" "$PODMAN_SOCKET" "podman service"; }

cmd_start() {
    [[ $ENGINE == podman ]] || die "the engine here is $ENGINE; a Docker engine needs no podman service"
    mkdir -p "$STATE_DIR"
    if running_pid >/dev/null && answers; then
        log "already running on $PODMAN_SOCKET"
        return 0
    fi
    rm -f "$PODMAN_SOCKET"
    # --time=0: no idle timeout; `stop` ends it. CONTAINERS_CONF (env.sh) is inherited.
    launch_detached "$PID_FILE" "$LOG_FILE" podman system service --time=0 "unix://$PODMAN_SOCKET"
    local deadline=$((SECONDS + PODMAN_START_TIMEOUT))
    until answers; do
        ((SECONDS < deadline)) || { tail -n 20 "$LOG_FILE" >&2; die "no answer on $PODMAN_SOCKET after $PODMAN_START_TIMEOUT s"; }
        sleep 0.2
    done
    log "podman API on unix://$PODMAN_SOCKET (pid $(<"$PID_FILE"), log $LOG_FILE)"
}

cmd_stop() {
    local pid
    if ! pid=$(running_pid); then
        log "not running"
        return 0
    fi
    stop_process "$PID_FILE" "$pid" 15 "podman service"
    rm -f "$PODMAN_SOCKET"
}

cmd_status() {
    if running_pid >/dev/null && answers; then
        echo "running, answering on unix://$PODMAN_SOCKET"
        return 0
    fi
    echo "not running"
    return 1
}

# Ryuk (testcontainers' reaper container) is off: the fixture removes its own containers.
cmd_env() {
    echo "export DOCKER_HOST=unix://$PODMAN_SOCKET"
    echo "export TESTCONTAINERS_RYUK_DISABLED=true"
    echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 start|stop|status|env" >&2
        exit 2
        ;;
esac
