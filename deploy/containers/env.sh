# Sourced by the container scripts: the engine's configuration comes from the project's own file.
# usage: source deploy/containers/env.sh   (sets CONTAINERS_CONF, ENGINE, CONTAINERS_DIR)
CONTAINERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$CONTAINERS_DIR/containers.conf"
ENGINE=${ENGINE:-$("$CONTAINERS_DIR/engine")}
