#!/usr/bin/env bash
# Builds the project's own Kafka broker image (deploy/containers/kafka/Containerfile) as IMAGE:
# Debian's JRE 17 plus the Maven Central jars deploy/kafka/broker.sh fetches, a single-node
# KRaft broker configured from KAFKA_* variables (docs/containers.md). The build context is
# assembled in a temporary folder (the jars are copied, links followed), so it holds only what
# the image needs.
#
# usage: deploy/containers/broker-image.sh [IMAGE]     (default localhost/fraudstream-kafka:local)
#
# Environment (optional): BASE_IMAGE (a Debian 12 image: debian:bookworm-slim where Docker Hub
# answers, else the local base from base-image.sh), ENGINE, LOCAL_BASE_IMAGE
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
REPO_ROOT=$(cd "$CONTAINERS_DIR/../.." && pwd)
IMAGE=${1:-localhost/fraudstream-kafka:local}
LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-localhost/fraudstream-base:bookworm}
KAFKA_LIBS=${KAFKA_LIBS:-$REPO_ROOT/.local/kafka/libs}

log() { printf 'broker-image.sh: %s\n' "$*" >&2; }

base_image() {
    if [[ -n ${BASE_IMAGE:-} ]]; then
        echo "$BASE_IMAGE"
    elif registry_reachable; then
        echo debian:bookworm-slim
    else
        log "no image registry reachable: building on the local base $LOCAL_BASE_IMAGE"
        bash "$CONTAINERS_DIR/base-image.sh" "$LOCAL_BASE_IMAGE" >&2
        echo "$LOCAL_BASE_IMAGE"
    fi
}

context=""

main() {
    local started=$SECONDS base
    KAFKA_LIBS=$KAFKA_LIBS bash "$REPO_ROOT/deploy/kafka/broker.sh" fetch
    base=$(base_image)
    context=$(mktemp -d "${TMPDIR:-/tmp}/fraudstream-kafka-image.XXXXXX")
    trap 'rm -rf "${context:-}"' EXIT
    cp -a "$CONTAINERS_DIR/kafka/." "$context/"
    mkdir "$context/libs"
    cp -L "$KAFKA_LIBS"/*.jar "$context/libs/"
    local args
    mapfile -t args < <(host_build_args) # apt inside the build reaches Debian's mirror
    args+=("--build-arg=BASE_IMAGE=$base")
    log "$ENGINE build on $base -> $IMAGE"
    "$ENGINE" build "${args[@]}" -t "$IMAGE" -f "$context/Containerfile" "$context"
    "$ENGINE" image prune -f >/dev/null
    log "built $IMAGE in $((SECONDS - started)) s"
}

main "$@"
