# shellcheck shell=bash
# Shared by the install scripts (deploy/prometheus/install.sh, deploy/containers/install-podman.sh):
# install Debian packages as root, through sudo when not root. Sourced, not run; the caller
# defines die() (its own log prefix).

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# usage: apt_install [apt-get install options...] PACKAGE...
apt_install() {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
