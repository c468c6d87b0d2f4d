#!/usr/bin/env bash
# Terraform for `terraform fmt -check` in the tests: the one on PATH if there is one, otherwise
# built from source through the Go module proxy into .local/bin (the Terraform releases site
# and registry are not reachable from every machine this project runs on).
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
VERSION=${TERRAFORM_VERSION:-1.11.4}
BIN_DIR="$REPO_ROOT/.local/bin"

if command -v terraform >/dev/null || [[ -x $BIN_DIR/terraform ]]; then
    exit 0
fi
command -v go >/dev/null || { echo "install-terraform.sh: error: go not found; install Go or Terraform" >&2; exit 1; }
mkdir -p "$BIN_DIR"
echo "install-terraform.sh: building terraform v$VERSION into $BIN_DIR (a few minutes, once)" >&2
GOBIN="$BIN_DIR" go install "github.com/hashicorp/terraform@v$VERSION"
