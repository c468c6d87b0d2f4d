#!/usr/bin/env bash
# Runs one Kafka command-line tool class from the jars deploy/kafka/broker.sh fetches, for the thin
# wrappers in deploy/bin. usage: run-tool.sh MAIN_CLASS [tool arguments...]
#
# Without --bootstrap-server (and without a client config file that may name one), the tool is
# pointed at the local broker, 127.0.0.1:$KAFKA_PORT. Logging is WARN and above on stderr, so a
# console consumer's stdout holds only messages. KAFKA_TOOLS_OPTS replaces the small-JVM options.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
KAFKA_LOCAL=${KAFKA_LOCAL:-$REPO_ROOT/.local/kafka}
KAFKA_LIBS=${KAFKA_LIBS:-$KAFKA_LOCAL/libs}
# C1 only and a serial GC: these tools mostly live for seconds, where startup time dominates.
read -r -a TOOL_OPTS <<<"${KAFKA_TOOLS_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"

names_a_broker() {
    local arg
    for arg in "$@"; do
        case $arg in
            --bootstrap-server | --bootstrap-server=* | --command-config* | --producer.config* | --consumer.config*)
                return 0
                ;;
        esac
    done
    return 1
}

main() {
    (($# >= 1)) || { echo "usage: $0 MAIN_CLASS [args...]" >&2; exit 2; }
    local main_class=$1
    shift
    KAFKA_LOCAL=$KAFKA_LOCAL KAFKA_LIBS=$KAFKA_LIBS "$SCRIPT_DIR/broker.sh" fetch
    local defaults=()
    names_a_broker "$@" || defaults=(--bootstrap-server "127.0.0.1:${KAFKA_PORT:-9092}")
    exec java "${TOOL_OPTS[@]}" -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$SCRIPT_DIR/log4j2-tools.xml" \
        -cp "$KAFKA_LIBS/*" "$main_class" "$@" ${defaults[@]+"${defaults[@]}"}
}

main "$@"
