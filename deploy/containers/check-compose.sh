#!/usr/bin/env bash
# Checks compose.yaml with a real compose implementation: `docker compose config` where Docker
# Compose v2 is installed, else podman-compose (pinned in the dev extras) `config`. Both resolve
# the anchors, merges and interpolation and reject what compose would refuse at `up`.
# Placeholder values stand in for the secrets, which come from the environment in real use.
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

if docker compose version >/dev/null 2>&1; then
    docker compose -f compose.yaml config --quiet
    echo "check-compose.sh: compose.yaml passes docker compose config"
else
    PODMAN_COMPOSE=${PODMAN_COMPOSE:-$REPO_ROOT/.venv/bin/podman-compose}
    "$PODMAN_COMPOSE" -f compose.yaml config >/dev/null
    echo "check-compose.sh: compose.yaml passes podman-compose config ($("$PODMAN_COMPOSE" version 2>/dev/null | tail -n 1))"
fi
