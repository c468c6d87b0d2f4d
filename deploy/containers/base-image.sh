#!/usr/bin/env bash
# Builds a local base image equivalent to python:3.11-slim-bookworm, for machines that reach a
# Debian mirror but no image registry (this project's CI runners): debootstrap a minimal Debian 12
# with Python 3.11, venv, pip, CA certificates and libgomp (XGBoost's OpenMP runtime), `python`
# on PATH, then import the tree as an image. Skipped when the image already exists.
#
# usage: deploy/containers/base-image.sh [IMAGE]        (as root: debootstrap needs it)
#
# Environment (optional): BASE_IMAGE (localhost/fraudstream-base:bookworm), DEBIAN_MIRROR (the
# mirror apt already uses, from /etc/apt/sources.list*), ENGINE (from deploy/containers/engine)
set -euo pipefail

source "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/env.sh"
IMAGE=${1:-${BASE_IMAGE:-localhost/fraudstream-base:bookworm}}
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,libgomp1

log() { printf 'base-image.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The first Debian (not -security) mirror in apt's own sources: the one this machine can reach.
apt_mirror() {
    local uri
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v -- '-security' | head -n 1 | tr -d ' ' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

root=""

main() {
    if "$ENGINE" image exists "$IMAGE" 2>/dev/null || "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
        log "$IMAGE already exists"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
    if ! command -v debootstrap >/dev/null; then
        log "installing Debian's debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    local mirror started=$SECONDS
    mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
    root=$(mktemp -d "${TMPDIR:-/tmp}/fraudstream-base.XXXXXX")
    trap 'rm -rf "${root:-}"' EXIT
    log "debootstrap bookworm from $mirror into $root"
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; die "debootstrap failed (log: $root.log)"; }
    rm -f "$root.log"
    # What an image needs no copy of: downloaded packages and apt's index.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    log "importing into $ENGINE as $IMAGE"
    tar -C "$root" -c . | "$ENGINE" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
    log "built $IMAGE in $((SECONDS - started)) s"
}

main "$@"
