#!/usr/bin/env bash
# Install Debian's `prometheus` package (which ships both `prometheus` and `promtool`) when either
# binary is missing. The config checks and the scrape test run these binaries; CI calls this
# script before the tests. Idempotent: with both binaries on PATH it changes nothing.
#
# usage: deploy/prometheus/install.sh        (as root, or with sudo available)
#
# The package's own service is not used by the project: the scrape test starts its own
# prometheus on a free port. Where no init system runs (containers, CI), the package's service
# is not started at all.
set -euo pipefail

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

have_binaries() { command -v prometheus >/dev/null && command -v promtool >/dev/null; }

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
# shellcheck source=../lib/apt-install.sh
source "$SCRIPT_DIR/../lib/apt-install.sh"

main() {
    if have_binaries; then
        log "already installed: $(prometheus --version 2>&1 | sed -n 1p)"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install Prometheus 2.x by hand"
    log "installing Debian's prometheus package"
    # Recommends would add node-exporter, a host agent this project does not need.
    apt_install --no-install-recommends prometheus
    have_binaries || die "prometheus installed, but prometheus/promtool are not on PATH"
    log "installed: $(prometheus --version 2>&1 | sed -n 1p)"
}

main "$@"
