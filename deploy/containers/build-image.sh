#!/usr/bin/env bash
# Builds deploy/Dockerfile into IMAGE with the engine deploy/containers/engine picks (docker where
# a Docker engine answers, else podman). The base image: $BASE_IMAGE when set; else the
# Dockerfile's pinned python:3.11-slim-bookworm where Docker Hub is reachable; else the local
# base from base-image.sh (built first when missing). Untagged images left behind by a rebuild
# are pruned afterwards, so repeated builds do not fill the disk.
#
# usage: deploy/containers/build-image.sh [IMAGE]        (default fraudstream:local)
#
# Environment (optional): BASE_IMAGE, ENGINE, LOCAL_BASE_IMAGE (localhost/fraudstream-base:bookworm)
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
REPO_ROOT=$(cd "$CONTAINERS_DIR/../.." && pwd)
IMAGE=${1:-fraudstream:local}
LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-localhost/fraudstream-base:bookworm}
BUILD_ARGS=()

log() { printf 'build-image.sh: %s\n' "$*" >&2; }

# Appends to BUILD_ARGS the base image to build on (building the local one first if needed).
add_base_image_arg() {
    if [[ -n ${BASE_IMAGE:-} ]]; then
        BUILD_ARGS+=("--build-arg=BASE_IMAGE=$BASE_IMAGE")
    elif registry_reachable; then
        log "Docker Hub is reachable: building on the Dockerfile's pinned base"
    else
        log "no image registry reachable: building on the local base $LOCAL_BASE_IMAGE"
        bash "$CONTAINERS_DIR/base-image.sh" "$LOCAL_BASE_IMAGE" >&2
        BUILD_ARGS+=("--build-arg=BASE_IMAGE=$LOCAL_BASE_IMAGE")
    fi
}

add_engine_args() {
    local host_args
    mapfile -t host_args < <(host_build_args) # pip reaches PyPI through the host's network
    BUILD_ARGS+=("${host_args[@]}")
    if [[ $ENGINE == podman ]]; then
        BUILD_ARGS+=("--ignorefile=$REPO_ROOT/deploy/Dockerfile.dockerignore")
    fi
}

build() {
    "$ENGINE" build "${BUILD_ARGS[@]}" -f "$REPO_ROOT/deploy/Dockerfile" "$@" "$REPO_ROOT"
}

main() {
    local started=$SECONDS
    add_base_image_arg
    add_engine_args
    log "$ENGINE build -> $IMAGE"
    # The build stage is tagged too: untagged, its layers (the dependency layer among them) would
    # be pruned below, and the next build would reinstall every dependency.
    build --target=build -t "$IMAGE-build"
    build -t "$IMAGE"
    "$ENGINE" image prune -f >/dev/null
    log "built $IMAGE in $((SECONDS - started)) s"
}

main "$@"
