#!/usr/bin/env bash
# Installs actionlint, the GitHub Actions workflow linter, into .local/bin (git-ignored). It is
# built from source through the Go module proxy, so Go is the only prerequisite; a binary of the
# pinned version already there is kept. actionlint also checks the workflows' `run:` scripts
# with shellcheck when that is on PATH (Debian package: shellcheck).
#
# usage: deploy/tools/install-actionlint.sh        then: .local/bin/actionlint
#
# Environment (optional): ACTIONLINT_VERSION (1.7.12), ACTIONLINT_BIN_DIR (.local/bin)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
# 1.7.12 knows the inputs of the current majors of the actions our workflows use (checkout@v6,
# setup-python@v6, configure-aws-credentials@v6, ...); older releases cannot check them.
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-1.7.12}
BIN_DIR=${ACTIONLINT_BIN_DIR:-$REPO_ROOT/.local/bin}

die() { printf 'install-actionlint.sh: error: %s\n' "$*" >&2; exit 1; }

installed=$("$BIN_DIR/actionlint" -version 2>/dev/null | sed -n 1p || true)
if [[ $installed == "v$ACTIONLINT_VERSION" ]]; then
    echo "actionlint $installed already in $BIN_DIR"
    exit 0
fi

command -v go >/dev/null || die "go not found; install Go 1.25 or newer (https://go.dev/doc/install, or Debian's golang-go)"
mkdir -p "$BIN_DIR"
GOBIN="$BIN_DIR" go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
echo "installed $("$BIN_DIR/actionlint" -version | sed -n 1p) into $BIN_DIR"
