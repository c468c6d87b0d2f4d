"""Structural checks of the deployment files, which nothing else runs before they reach production.

compose.yaml needs a Docker engine, the workflows need GitHub and the Terraform configuration
needs AWS, so the properties that matter are pinned here: start order by health, no secrets in
plain text, OIDC instead of stored AWS keys, a private and encrypted bucket, and names that
must agree across files (setting names, the CI broker address, resources CD targets). The real
linters (terraform fmt, actionlint) run in tests/integration/test_deploy_linters.py.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]  # stubs (types-PyYAML) are not pinned

from stream_app.settings import TopicNames, WorkerSettings
from stream_app.settings_doc import settings_table

REPO_ROOT = Path(__file__).resolve().parents[2]
# compose.local.yaml: the stack from images built here (docs/containers.md); both files are held
# to the same rules.
COMPOSE_FILES = ["compose.yaml", "compose.local.yaml"]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
TERRAFORM = REPO_ROOT / "deploy" / "terraform"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")
# FRAUDSTREAM_<SECTION>__<FIELD>; FRAUDSTREAM_TEST_BOOTSTRAP is the tests' own, not a setting.
SETTING_NAME = re.compile(r"\bFRAUDSTREAM_[A-Z]+__[A-Z0-9_]*[A-Z0-9]\b")
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


# --- helpers ----------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose(name: str = "compose.yaml") -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(REPO_ROOT / name)
    return document


@cache
def workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = load_yaml(WORKFLOWS / name)
    # YAML 1.1 reads the bare key `on` as the boolean true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in document["jobs"].values() for step in job.get("steps", [])]


def step_using(document: dict[str, Any], action: str) -> dict[str, Any]:
    matches = [step for step in steps(document) if step.get("uses", "").startswith(f"{action}@")]
    assert len(matches) == 1, f"expected one step using {action}, found {len(matches)}"
    return matches[0]


def run_scripts(document: dict[str, Any]) -> list[str]:
    return [step["run"] for step in steps(document) if "run" in step]


@cache
def terraform_text() -> str:
    return "\n".join(path.read_text() for path in sorted(TERRAFORM.glob("*.tf")))


def _balanced_body(open_brace: int) -> str:
    """The text between the brace at ``open_brace`` and its match (``${...}`` nests fine)."""
    text, depth = terraform_text(), 0
    for index in range(open_brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[open_brace + 1 : index]
    raise AssertionError(f"unbalanced braces after offset {open_brace} in {TERRAFORM}")


def hcl_block(header: str) -> str:
    """The body of the top-level block whose header is e.g. ``resource "type" "name"``."""
    pattern = r"\s+".join(re.escape(part) for part in header.split()) + r"\s*\{"
    match = re.search(rf"^{pattern}", terraform_text(), re.MULTILINE)
    assert match, f"no block {header} in {TERRAFORM}"
    return _balanced_body(match.end() - 1)


def locals_defining(name: str) -> str:
    """The body of the ``locals`` block that assigns ``name``."""
    for match in re.finditer(r"^locals\s*\{", terraform_text(), re.MULTILINE):
        body = _balanced_body(match.end() - 1)
        if re.search(rf"^\s*{re.escape(name)}\s*=", body, re.MULTILINE):
            return body
    raise AssertionError(f"no locals block assigns {name}")


def hcl_attribute(body: str, name: str) -> str:
    match = re.search(rf"^\s*{re.escape(name)}\s*=\s*(.+)$", body, re.MULTILINE)
    assert match, f"no attribute {name} in block:\n{body}"
    return match.group(1).strip()


def known_settings() -> set[str]:
    return set(SETTING_NAME.findall(settings_table()))


# --- compose.yaml -----------------------------------------------------------------------------


@pytest.mark.parametrize("file", COMPOSE_FILES)
@pytest.mark.parametrize("service", ["kafka", "worker"])
def test_compose_services_others_wait_for_have_healthchecks(file: str, service: str) -> None:
    healthcheck = compose(file)["services"][service].get("healthcheck", {})
    assert healthcheck.get("test"), f"{service} has no healthcheck test"
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_services_of_the_project_image_do_not_inherit_the_workers_health_check(
    file: str,
) -> None:
    """The image's HEALTHCHECK asks the worker's /health: every other service started from the
    image (or built from it, as mlflow is) has its own check or disables it, else it would
    show as unhealthy for ever."""
    for name, service in compose(file)["services"].items():
        if not str(service.get("image")).endswith("fraudstream:local") or name == "worker":
            continue
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} inherits the worker's health check"
        assert healthcheck.get("disable") or "6066" not in str(healthcheck.get("test")), name


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_dependents_wait_until_kafka_and_worker_are_healthy(file: str) -> None:
    waited_on = 0
    for name, service in compose(file)["services"].items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):  # the short form waits for "started", not "healthy"
            assert not {"kafka", "worker"} & set(depends_on), f"{name}: use condition form"
            continue
        for dependency in {"kafka", "worker"} & depends_on.keys():
            assert depends_on[dependency].get("condition") == "service_healthy", (
                f"{name} starts before {dependency} is healthy"
            )
            waited_on += 1
    assert waited_on >= 2  # topics wait for kafka, the generator for the worker


# The Compose specification's service attributes (compose-spec, services): podman-compose's
# `config` (check-compose.sh) parses the file but accepts an unknown attribute or a dependency on
# a service that does not exist, so those two are checked here.
_COMPOSE_SERVICE_ATTRIBUTES = """
annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules
devices dns dns_opt dns_search domainname entrypoint env_file environment expose extends
external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation
labels links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports
post_start pre_stop privileged profiles pull_policy read_only restart runtime scale secrets
security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs
tty ulimits user userns_mode uts volumes volumes_from working_dir
"""
COMPOSE_SERVICE_KEYS = frozenset(_COMPOSE_SERVICE_ATTRIBUTES.split())


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_services_use_only_known_attributes_and_depend_on_defined_services(
    file: str,
) -> None:
    services = compose(file)["services"]
    for name, service in services.items():
        unknown = set(service) - COMPOSE_SERVICE_KEYS
        assert not unknown, f"{name}: not Compose service attributes: {sorted(unknown)}"
        depends_on = service.get("depends_on", {})
        missing = set(depends_on) - set(services)
        assert not missing, f"{name} depends on services compose.yaml does not define: {missing}"


def _user_owned_image_folders() -> set[str]:
    """Folders deploy/Dockerfile creates owned by its non-root user (``install -d -o``)."""
    text = (REPO_ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    found: set[str] = set()
    for command in re.findall(r"install -d -o fraudstream -g fraudstream ([^&\n]+)", text):
        found.update(command.split())
    return found


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_named_volumes_of_the_project_image_are_folders_its_user_owns(file: str) -> None:
    """Docker gives a new named volume the owner of the image's folder at the mount point, root
    where the image has none: the image's non-root user could not write its models or store."""
    document = compose(file)
    named_volumes = set(document.get("volumes") or {})
    owned = _user_owned_image_folders()
    for name, service in document["services"].items():
        if not str(service.get("image")).endswith("fraudstream:local"):
            continue
        for volume in service.get("volumes", []):
            source, target = str(volume).split(":")[:2]
            if source in named_volumes:
                assert target in owned, f"{name}: {target} is not a folder the image's user owns"


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_mlflow_accepts_the_host_names_its_callers_use(file: str) -> None:
    """MLflow 3 answers only Host headers it is told about: the services call it as mlflow:5000."""
    command = " ".join(str(part) for part in compose(file)["services"]["mlflow"]["command"])
    allowed = re.search(r"--allowed-hosts[= ](\S+)", command)
    assert allowed, "mlflow server without --allowed-hosts refuses the other services"
    assert {"mlflow:5000", "127.0.0.1:5000"} <= set(allowed.group(1).split(","))


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_first_model_trains_on_history_that_ends_today(file: str) -> None:
    """`fraudstream-train train` reads the last 28 days; history from its default start day
    (2025-01-01) is outside them, and the first model had nothing to train on."""
    command = " ".join(str(part) for part in compose(file)["services"]["model"]["command"])
    history = re.search(r"fraudstream-generate history (.*?)(&&|$)", command)
    assert history, "the model service no longer simulates its history"
    assert re.search(
        r"--days 28 --start \"\$\$\(date -u -d '28 days ago' \+%F\)\"", history.group(1)
    )


def _environments(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Every environment mapping, the x- anchors included."""
    found = [value for key, value in document.items() if key.startswith("x-")]
    for service in document["services"].values():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment if "=" in item)
        found.append(environment)
    return [env for env in found if isinstance(env, dict)]


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_has_no_literal_secrets(file: str) -> None:
    secrets = {
        name: value
        for environment in _environments(compose(file))
        for name, value in environment.items()
        if SECRET_NAME.search(name) and not INTERPOLATION.match(str(value))
    }
    assert secrets == {}, "pass secrets as ${VARIABLE} from the environment, never literally"
    text = (REPO_ROOT / file).read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|BEGIN [A-Z ]*PRIVATE KEY", text)


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_publishes_ports_on_loopback_only(file: str) -> None:
    services = compose(file)["services"].values()
    published = [str(port) for service in services for port in service.get("ports", [])]
    assert published
    assert all(port.startswith("127.0.0.1:") for port in published), published


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_settings_are_real_settings(file: str) -> None:
    assert set(SETTING_NAME.findall((REPO_ROOT / file).read_text())) <= known_settings()


def test_compose_local_needs_no_secret_and_moves_every_host_port_by_variable() -> None:
    """The local stack runs with nothing secret set, and every host port can be moved (the
    defaults clash with `make up`'s broker and a host Prometheus)."""
    text = (REPO_ROOT / "compose.local.yaml").read_text()
    assert not re.search(r"\$\{[A-Z_]+:\?", text), "compose.local.yaml requires a variable"
    for service in compose("compose.local.yaml")["services"].values():
        for port in service.get("ports", []):
            assert re.fullmatch(r"127\.0\.0\.1:\$\{STACK_[A-Z]+_PORT:-\d+\}:\d+", port), port


# --- workflows --------------------------------------------------------------------------------


def test_cd_authenticates_through_oidc_with_the_two_secrets() -> None:
    cd = workflow("cd.yml")
    assert cd["permissions"] == {"id-token": "write", "contents": "read"}
    credentials = step_using(cd, "aws-actions/configure-aws-credentials")["with"]
    assert credentials["role-to-assume"] == "${{ secrets.AWS_OIDC_ROLE_ARN }}"
    assert credentials["allowed-account-ids"] == "${{ secrets.AWS_ACCOUNT_ID }}"
    text = (WORKFLOWS / "cd.yml").read_text()
    assert "aws-access-key-id" not in text
    assert "AWS_SECRET_ACCESS_KEY" not in text


def test_cd_deploys_main_and_version_tags() -> None:
    push = workflow("cd.yml")["on"]["push"]
    assert push["branches"] == ["main"]
    assert push["tags"]


def test_cd_applies_the_image_tag_it_built() -> None:
    cd = workflow("cd.yml")
    build = step_using(cd, "docker/build-push-action")["with"]
    assert build["file"] == "deploy/Dockerfile"
    assert build["push"] is True
    tag_expression = build["tags"].rsplit(":", 1)[1]
    applies = [
        step
        for step in steps(cd)
        if "terraform apply" in step.get("run", "") and "-target" not in step["run"]
    ]
    assert len(applies) == 1
    assert '-var "image_tag=$IMAGE_TAG"' in applies[0]["run"]
    assert applies[0]["env"]["IMAGE_TAG"] == tag_expression


def test_cd_names_terraform_resources_and_outputs_that_exist() -> None:
    scripts = "\n".join(run_scripts(workflow("cd.yml")))
    targets = re.findall(r"-target=(\w+)\.(\w+)", scripts)
    outputs = set(re.findall(r"terraform output -(?:raw|json) (\w+)", scripts))
    assert targets
    assert outputs
    for resource_type, name in targets:
        hcl_block(f'resource "{resource_type}" "{name}"')
    for output in outputs:
        hcl_block(f'output "{output}"')
    repository = hcl_attribute(hcl_block('resource "aws_ecr_repository" "app"'), "name")
    assert repository == "var.project"
    default_project = hcl_attribute(hcl_block('variable "project"'), "default")
    assert workflow("cd.yml")["env"]["ECR_REPOSITORY"] == default_project.strip('"')


def test_ci_tests_against_the_kafka_service() -> None:
    job = workflow("ci.yml")["jobs"]["test"]
    kafka = job["services"]["kafka"]
    assert kafka["image"] == compose()["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    host_port, container_port = str(kafka["ports"][0]).split(":")
    assert container_port == "9092"
    bootstrap = f"localhost:{host_port}"
    assert job["env"]["FRAUDSTREAM_TEST_BOOTSTRAP"] == bootstrap
    assert kafka["env"]["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{bootstrap}"
    assert "--health-cmd" in kafka["options"]


def test_ci_runs_the_lint_and_test_commands_on_python_311_and_java_17() -> None:
    ci = workflow("ci.yml")
    scripts = run_scripts(ci)
    assert "make lint" in scripts
    assert any(re.fullmatch(r"make( -o up)? test", script.strip()) for script in scripts)
    assert str(step_using(ci, "actions/setup-python")["with"]["python-version"]) == "3.11"
    assert str(step_using(ci, "actions/setup-java")["with"]["java-version"]) == "17"
    assert step_using(ci, "actions/setup-python")["with"]["cache"] == "pip"
    assert step_using(ci, "actions/setup-java")["with"]["cache"] == "maven"


@pytest.mark.parametrize("name", ["ci.yml", "cd.yml"])
def test_actions_are_pinned_to_a_version(name: str) -> None:
    used = [step["uses"] for step in steps(workflow(name)) if "uses" in step]
    assert used
    assert [action for action in used if not PINNED_ACTION.match(action)] == []


# --- Terraform --------------------------------------------------------------------------------


def test_bucket_is_versioned_encrypted_private_and_tls_only() -> None:
    versioning = hcl_block('resource "aws_s3_bucket_versioning" "data"')
    assert hcl_attribute(versioning, "status") == '"Enabled"'
    encryption = hcl_block('resource "aws_s3_bucket_server_side_encryption_configuration" "data"')
    assert hcl_attribute(encryption, "sse_algorithm") in {'"aws:kms"', '"AES256"'}
    public_access = hcl_block('resource "aws_s3_bucket_public_access_block" "data"')
    for setting in [
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ]:
        assert hcl_attribute(public_access, setting) == "true", setting
    for block in [versioning, encryption, public_access]:
        assert hcl_attribute(block, "bucket") == "aws_s3_bucket.data.id"
    policy = hcl_block('data "aws_iam_policy_document" "data_bucket"')
    tls_statement = policy.split("statement", 2)[1]
    assert '"Deny"' in tls_statement
    assert '"aws:SecureTransport"' in tls_statement
    assert 'values   = ["false"]' in tls_statement


def test_providers_and_terraform_are_pinned() -> None:
    settings = hcl_block("terraform")
    assert re.search(r'required_version\s*=\s*">=\s*\d+\.\d+', settings)
    for provider in ["aws", "random"]:
        declaration = re.search(rf"{provider}\s*=\s*\{{([^}}]*)\}}", settings)
        assert declaration, provider
        assert f'source  = "hashicorp/{provider}"' in declaration.group(1)
        assert re.search(r'version\s*=\s*"(~>|=)\s*\d+\.\d+', declaration.group(1)), provider


def test_secrets_reach_tasks_by_reference_only() -> None:
    text = terraform_text()
    literal = re.findall(r'(?im)^\s*\w*(password|secret_string|credential)\w*\s*=\s*"[^"$]+"', text)
    assert literal == []
    plain = set(SETTING_NAME.findall(locals_defining("common_environment")))
    assert "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS" in plain
    assert {name for name in plain if SECRET_NAME.search(name)} == set()
    # Secrets are ECS `secrets` entries whose valueFrom is an ARN, checked by the variable.
    entries = r"\[for name, arn in local\.task_secrets : \{ name = name, valueFrom = arn \}\]"
    assert re.search(rf"secrets\s*=\s*{entries}", text)
    assert "(secretsmanager|ssm)" in hcl_block('variable "task_secrets"')


def test_settings_given_to_tasks_are_real_settings() -> None:
    assert set(SETTING_NAME.findall(terraform_text())) <= known_settings()


def test_kafka_is_msk_or_external_by_variable() -> None:
    variable = hcl_block('variable "kafka_mode"')
    assert 'contains(["msk", "external"], var.kafka_mode)' in variable
    assert hcl_attribute(hcl_block('resource "aws_msk_cluster" "main"'), "count") == (
        "local.msk ? 1 : 0"
    )


def test_load_balancer_forwards_predict_and_health_to_the_worker_port() -> None:
    rule = hcl_block('resource "aws_lb_listener_rule" "worker"')
    assert re.search(r'values\s*=\s*\["/predict", "/health"\]', rule)
    target_group = hcl_block('resource "aws_lb_target_group" "worker"')
    assert hcl_attribute(target_group, "path") == '"/health"'
    worker_port = re.search(r"worker_port\s*=\s*(\d+)", terraform_text())
    assert worker_port
    assert int(worker_port.group(1)) == WorkerSettings().web_port


@pytest.mark.parametrize("file", COMPOSE_FILES)
def test_compose_creates_every_settings_topic_and_compacts_the_rules(file: str) -> None:
    (script,) = compose(file)["services"]["topics"]["command"]
    listed = script.split("for topic in ", 1)[1].split(";", 1)[0].split()
    rules = TopicNames().rules
    assert sorted([*listed, rules]) == sorted(TopicNames().all())
    assert f"--topic {rules}" in script and "cleanup.policy=compact" in script
