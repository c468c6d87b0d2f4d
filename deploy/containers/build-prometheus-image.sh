#!/usr/bin/env bash
# Builds deploy/containers/prometheus/Containerfile (Debian's prometheus package on the local
# base) into IMAGE with the engine deploy/containers/engine picks, for compose.local.yaml.
# The base is built first when missing (base-image.sh). apt reaches the Debian mirror through the
# host's network and, with podman, the host's CA bundle, as build-image.sh does for pip.
#
# usage: deploy/containers/build-prometheus-image.sh [IMAGE]   (default fraudstream-prometheus:local)
#
# Environment (optional): BASE_IMAGE (localhost/fraudstream-base:bookworm; its Python runs the
# health check), ENGINE
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
IMAGE=${1:-fraudstream-prometheus:local}
BASE_IMAGE=${BASE_IMAGE:-localhost/fraudstream-base:bookworm}
HOST_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BUILD_ARGS=("--build-arg=BASE_IMAGE=$BASE_IMAGE")

log() { printf 'build-prometheus-image.sh: %s\n' "$*" >&2; }

main() {
    local started=$SECONDS
    if [[ $BASE_IMAGE == localhost/fraudstream-base:* ]]; then
        bash "$CONTAINERS_DIR/base-image.sh" "$BASE_IMAGE" >&2
    fi
    if [[ $ENGINE == podman ]]; then
        # Docker format keeps the HEALTHCHECK (OCI images have no field for it).
        BUILD_ARGS+=(--format=docker)
        [[ -f $HOST_CA_BUNDLE ]] && BUILD_ARGS+=("--volume=$HOST_CA_BUNDLE:$HOST_CA_BUNDLE:ro")
    fi
    log "$ENGINE build -> $IMAGE (on $BASE_IMAGE)"
    "$ENGINE" build --network=host "${BUILD_ARGS[@]}" -t "$IMAGE" \
        -f "$CONTAINERS_DIR/prometheus/Containerfile" "$CONTAINERS_DIR/prometheus"
    log "built $IMAGE in $((SECONDS - started)) s"
}

main "$@"
