"""``fraudstream-rules put/list/delete`` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stream_app.settings import TopicNames
from tests.kafka_helpers import REPO_ROOT
from tests.workers import settings_env

DENY = {"rule_id": "deny-a", "kind": "deny_list", "field": "device_id", "values": ["d2", "d1"]}
LIMIT = {"rule_id": "limit", "kind": "amount_limit", "usd_above": 900, "mode": "shadow"}


def rules_cli(
    bootstrap: str, topics: TopicNames, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream_app.rules.cli", *args],
        env=settings_env(bootstrap, topics),
        cwd=REPO_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def listed(bootstrap: str, topics: TopicNames) -> list[dict[str, object]]:
    result = rules_cli(bootstrap, topics, "list")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_put_list_delete_and_a_refused_rule(
    kafka_bootstrap: str, topics: TopicNames, tmp_path: Path
) -> None:
    path = tmp_path / "rules.jsonl"
    path.write_text(f"{json.dumps(DENY)}\n{json.dumps(LIMIT)}\n")
    put = rules_cli(kafka_bootstrap, topics, "put", str(path))
    assert put.returncode == 0, put.stderr
    rules = listed(kafka_bootstrap, topics)
    assert [(r["rule_id"], r["mode"]) for r in rules] == [("deny-a", "active"), ("limit", "shadow")]
    assert rules[0]["values"] == ["d1", "d2"]

    refused = rules_cli(kafka_bootstrap, topics, "put", "-", stdin='{"rule_id": "x"}\n')
    assert refused.returncode == 2 and "schema_violation" in refused.stderr

    deleted = rules_cli(kafka_bootstrap, topics, "delete", "deny-a")
    assert deleted.returncode == 0, deleted.stderr
    assert [r["rule_id"] for r in listed(kafka_bootstrap, topics)] == ["limit"]
