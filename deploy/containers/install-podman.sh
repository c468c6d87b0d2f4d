#!/usr/bin/env bash
# Installs Debian's podman (and runc, the runtime containers.conf selects) when missing.
# Idempotent: with podman on PATH, or a Docker engine that answers, it changes nothing.
#
# usage: deploy/containers/install-podman.sh        (as root, or with sudo available)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

log() { printf 'install-podman.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=../lib/apt-install.sh
source "$SCRIPT_DIR/../lib/apt-install.sh"

main() {
    if [[ $("$SCRIPT_DIR/engine") == docker ]]; then
        log "a Docker engine answers: podman is not needed"
        return 0
    fi
    if command -v podman >/dev/null && command -v runc >/dev/null; then
        log "already installed: $(podman --version)"
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install podman (4.x) and runc by hand"
    log "installing Debian's podman and runc"
    apt_install podman runc
    log "installed: $(podman --version)"
}

main "$@"
