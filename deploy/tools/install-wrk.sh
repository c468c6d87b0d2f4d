#!/usr/bin/env bash
# Install Debian's `wrk` (a C HTTP load generator) when it is missing: bench/bench_compare.py's
# /predict leg loads the worker with it, so the load generator's own CPU stays small next to the
# worker's on a 2-core machine (the Python client cost ~300 us of CPU per request, about what
# the server spends). Idempotent.
#
# usage: deploy/tools/install-wrk.sh        (as root, or with sudo available)
set -euo pipefail

log() { printf 'install-wrk.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
# shellcheck source=../lib/apt-install.sh
source "$SCRIPT_DIR/../lib/apt-install.sh"

if command -v wrk >/dev/null; then
    log "already installed: $(command -v wrk)"
    exit 0
fi
command -v apt-get >/dev/null || die "apt-get not found: install wrk 4.x by hand"
apt_install --no-install-recommends wrk
command -v wrk >/dev/null || die "wrk installed, but not on PATH"
log "installed: $(command -v wrk)"
