#!/usr/bin/env bash
# Checks compose.yaml and compose.local.yaml with a real compose implementation: `docker compose config` where Docker
# Compose v2 is installed, else podman-compose (pinned in the dev extras) `config`. Both resolve
# the anchors, merges and interpolation and reject what compose would refuse at `up`.
# Placeholder values stand in for compose.yaml's secrets, which come from the environment in real
# use; compose.local.yaml needs none, so it is checked with them unset.
#
# usage: deploy/containers/check-compose.sh
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
REPO_ROOT=$(cd "$CONTAINERS_DIR/../.." && pwd)
cd "$REPO_ROOT"

export MINIO_ROOT_USER=${MINIO_ROOT_USER:-check-user}
export MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:-check-password}
export MLFLOW_DB_PASSWORD=${MLFLOW_DB_PASSWORD:-check-password}
export GRAFANA_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD:-check-password}

check() {  # check FILE [env -u VAR ...]: compose config of FILE
    local file=$1
    shift
    if docker compose version >/dev/null 2>&1; then
        "$@" docker compose -f "$file" config --quiet
        echo "check-compose.sh: $file passes docker compose config"
    else
        PODMAN_COMPOSE=${PODMAN_COMPOSE:-$REPO_ROOT/.venv/bin/podman-compose}
        "$@" "$PODMAN_COMPOSE" -f "$file" config >/dev/null
        echo "check-compose.sh: $file passes podman-compose config ($("$PODMAN_COMPOSE" version 2>/dev/null | tail -n 1))"
    fi
}

check compose.yaml
check compose.local.yaml env -u MINIO_ROOT_USER -u MINIO_ROOT_PASSWORD -u MLFLOW_DB_PASSWORD -u GRAFANA_ADMIN_PASSWORD
