# Sourced by the container scripts: the engine's configuration comes from the project's own file.
# usage: source deploy/containers/env.sh   (sets CONTAINERS_CONF, ENGINE, CONTAINERS_DIR;
# defines registry_reachable and host_build_args)
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

# The build arguments every image here needs, one a line (mapfile -t args < <(host_build_args)):
# the host's network, through which apt and pip reach their mirrors, and with podman the host's
# CA bundle (so they trust what this machine trusts) and Docker format (OCI images have no field
# for HEALTHCHECK, which podman would drop).
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
host_build_args() {
    echo --network=host
    if [[ $ENGINE == podman ]]; then
        echo --format=docker
        if [[ -f $HOST_CA_BUNDLE ]]; then echo "--volume=$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro"; fi
    fi
}
