#!/usr/bin/env bash
# Terraform is needed only for `terraform fmt -check` in the deployment tests. It cannot be
# fetched from the package registries this project may use: the releases site and registry are
# out of reach, and the Go module proxy's copy does not build (its go.mod has replace directives
# and internal modules the proxy does not serve; tried v1.11.4 and v1.13.3). So this only checks,
# and says what to do; the test that needs the binary fails with the same hint.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
if command -v terraform >/dev/null || [[ -x $REPO_ROOT/.local/bin/terraform ]]; then
    exit 0
fi
echo "install-terraform.sh: warning: terraform not found; install Terraform >= 1.11 on PATH" \
    "or into .local/bin (tests/unit/test_deploy_config.py's fmt check needs it)" >&2
