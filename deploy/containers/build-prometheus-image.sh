#!/usr/bin/env bash
# Builds deploy/containers/prometheus/Containerfile (Debian's prometheus package on the local
# base) into IMAGE with the engine deploy/containers/engine picks, for compose.local.yaml.
# The base is built first when missing (base-image.sh). apt reaches the Debian mirror through the
# host's network and, with podman, the host's CA bundle (env.sh's host_build_args).
#
# usage: deploy/containers/build-prometheus-image.sh [IMAGE]   (default fraudstream-prometheus:local)
#
# Environment (optional): BASE_IMAGE (localhost/fraudstream-base:bookworm; its Python runs the
# health check), ENGINE
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
IMAGE=${1:-fraudstream-prometheus:local}
BASE_IMAGE=${BASE_IMAGE:-localhost/fraudstream-base:bookworm}
BUILD_ARGS=("--build-arg=BASE_IMAGE=$BASE_IMAGE")

log() { printf 'build-prometheus-image.sh: %s\n' "$*" >&2; }

main() {
    local started=$SECONDS
    if [[ $BASE_IMAGE == localhost/fraudstream-base:* ]]; then
        bash "$CONTAINERS_DIR/base-image.sh" "$BASE_IMAGE" >&2
    fi
    local host_args
    mapfile -t host_args < <(host_build_args) # apt reaches Debian's mirror
    BUILD_ARGS+=("${host_args[@]}")
    log "$ENGINE build -> $IMAGE (on $BASE_IMAGE)"
    "$ENGINE" build "${BUILD_ARGS[@]}" -t "$IMAGE" \
        -f "$CONTAINERS_DIR/prometheus/Containerfile" "$CONTAINERS_DIR/prometheus"
    log "built $IMAGE in $((SECONDS - started)) s"
}

main "$@"
