# Sourced by the container scripts: the engine's configuration comes from the project's own file.
# usage: source deploy/containers/env.sh   (sets CONTAINERS_CONF, ENGINE, CONTAINERS_DIR;
# defines registry_reachable)
CONTAINERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CONTAINERS_CONF="$CONTAINERS_DIR/containers.conf"
ENGINE=${ENGINE:-$("$CONTAINERS_DIR/engine")}

# Docker Hub answers /v2/ with 401 (or 200) when it is reachable at all.
registry_reachable() {
    command -v curl >/dev/null || return 1
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 https://registry-1.docker.io/v2/ || true)
    [[ $code == 401 || $code == 200 ]]
}
