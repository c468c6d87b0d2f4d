"""The real linters on the deployment files: terraform fmt and actionlint.

Integration tests: they need the terraform and actionlint binaries (make tools), not the network.
The structural checks of the same files are in tests/unit/test_deploy_config.py.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.kafka_helpers import REPO_ROOT

ACTIONLINT_INSTALLER = "deploy/tools/install-actionlint.sh"


def _binary(name: str, hint: str) -> str:
    local = REPO_ROOT / ".local" / "bin" / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found in .local/bin or on PATH: {hint}")
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_terraform_configuration_is_formatted() -> None:
    terraform = _binary("terraform", "install Terraform 1.11 or newer")
    result = _run(terraform, "fmt", "-check", "-recursive", "-diff", "deploy/terraform")
    assert result.returncode == 0, f"run `terraform fmt -recursive deploy/terraform`:\n{result}"


def test_workflows_pass_actionlint() -> None:
    actionlint = _binary("actionlint", f"install it with {ACTIONLINT_INSTALLER}")
    result = _run(actionlint, "-color=false")
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"
