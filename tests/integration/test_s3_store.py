"""The S3 backend of stream_app/store.py against a real S3-compatible server over HTTP.

The server is s3proxy, run by deploy/s3/s3proxy.sh on a free port on 127.0.0.1 with a key pair
made for this session, so boto3 signs real requests and the server checks them. Every test gets
a fresh bucket. The cases every backend shares are in tests/store_contract.py; the ones here
are S3's own: the prefix on the server, other tenants' objects, error codes, the script.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from stream_app.settings import StoreSettings
from stream_app.store import (
    LocalStore,
    ObjectNotFoundError,
    ObjectStore,
    S3Store,
    open_store,
)
from tests.kafka_helpers import REPO_ROOT
from tests.processes import free_port
from tests.store_contract import (
    CONTRACT,
    CONTRACT_IDS,
    bytes_round_trip_and_overwrite,
    list_is_a_sorted_string_prefix_match,
    observe,
)

S3PROXY_SH = REPO_ROOT / "deploy" / "s3" / "s3proxy.sh"
FETCH_TIMEOUT_S = 600  # the first fetch downloads a 55 MB jar from Maven Central
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
SCRIPT_TIMEOUT_S = 120  # s3proxy.sh start waits up to 60 s itself; this only stops a hung script


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    log: Path

    def client(self, secret_access_key: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
        )

    def settings(self, uri: str, secret_access_key: str | None = None) -> StoreSettings:
        return StoreSettings(
            uri=uri,
            s3_endpoint_url=self.endpoint_url,
            s3_access_key_id=self.access_key_id,
            s3_secret_access_key=secret_access_key or self.secret_access_key,
        )


def _script_env(state_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("S3PROXY_")}
    return {**env, "S3PROXY_LOCAL": str(state_dir), "S3PROXY_PORT": str(port), **extra}


def _wait_until_answering(process: subprocess.Popen[bytes], server: S3Server) -> None:
    """Poll with a signed request until the server answers, it exits, or the deadline passes."""
    client = server.client()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"s3proxy exited with {process.returncode}:\n{server.log.read_text()}"
            )
        try:
            client.list_buckets()
        except EndpointConnectionError:
            time.sleep(0.2)
        else:
            return
    raise TimeoutError(
        f"s3proxy did not answer in {START_TIMEOUT_S:.0f}s:\n{server.log.read_text()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One s3proxy for the module, in the foreground of a process this fixture owns."""
    subprocess.run(["bash", str(S3PROXY_SH), "fetch"], check=True, timeout=FETCH_TIMEOUT_S)
    state_dir = tmp_path_factory.mktemp("s3proxy")
    port = free_port()
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id=f"test-{secrets.token_hex(8)}",
        secret_access_key=secrets.token_hex(24),
        log=state_dir / "server.log",
    )
    env = _script_env(
        state_dir,
        port,
        S3PROXY_IDENTITY=server.access_key_id,
        S3PROXY_CREDENTIAL=server.secret_access_key,
    )
    with server.log.open("wb") as output:
        process = subprocess.Popen(
            ["bash", str(S3PROXY_SH), "run"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, so stopping it never reaches pytest
        )
        try:
            _wait_until_answering(process, server)
            yield server
        finally:
            _stop(process)


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.mark.parametrize("case", CONTRACT, ids=CONTRACT_IDS)
def test_s3_store_keeps_the_object_store_contract(
    s3_server: S3Server, bucket: str, case: Callable[[ObjectStore], None]
) -> None:
    store = open_store(s3_server.settings(f"s3://{bucket}/tenant-a"))
    assert isinstance(store, S3Store)
    case(store)


def test_writes_land_under_the_store_prefix(s3_server: S3Server, bucket: str) -> None:
    store = open_store(s3_server.settings(f"s3://{bucket}/tenant-a"))
    bytes_round_trip_and_overwrite(store)
    # The prefix is applied on the server, not just in the store's own bookkeeping.
    raw = s3_server.client().get_object(Bucket=bucket, Key="tenant-a/reports/2025/a.json")
    assert raw["Body"].read() == b"second"


def test_list_sees_only_the_store_prefix_as_plain_string_prefixes(
    s3_server: S3Server, bucket: str
) -> None:
    store = open_store(s3_server.settings(f"s3://{bucket}/tenant-a/"))
    s3_server.client().put_object(Bucket=bucket, Key="tenant-b/t/other", Body=b"x")
    s3_server.client().put_object(Bucket=bucket, Key="tenant-a2/t/other", Body=b"x")

    list_is_a_sorted_string_prefix_match(store)  # the other tenants' objects are not listed


def test_uris_name_bucket_prefix_and_key(s3_server: S3Server, bucket: str) -> None:
    prefixed = open_store(s3_server.settings(f"s3://{bucket}/tenant-a"))
    bare = open_store(s3_server.settings(f"s3://{bucket}"))
    assert prefixed.uri() == f"s3://{bucket}/tenant-a"
    assert prefixed.uri("lake/x.parquet") == f"s3://{bucket}/tenant-a/lake/x.parquet"
    assert bare.uri() == f"s3://{bucket}"
    bare.put_bytes("root.txt", b"at the top")
    assert bare.uri("root.txt") == f"s3://{bucket}/root.txt"
    assert s3_server.client().get_object(Bucket=bucket, Key="root.txt")["Body"].read() == (
        b"at the top"
    )


def test_missing_key_raises_object_not_found(s3_server: S3Server, bucket: str) -> None:
    store = open_store(s3_server.settings(f"s3://{bucket}/p"))
    with pytest.raises(ObjectNotFoundError) as caught:
        store.get_bytes("lake/nothing-here.parquet")
    assert str(caught.value) == f"s3://{bucket}/p/lake/nothing-here.parquet"
    assert isinstance(caught.value, FileNotFoundError)


def test_infrastructure_errors_are_not_reported_as_missing_objects(
    s3_server: S3Server, bucket: str
) -> None:
    """A wrong key or a missing bucket must raise, not look like an absent object."""
    store = open_store(s3_server.settings(f"s3://{bucket}/p"))
    store.put_bytes("k", b"v")
    wrong_key = open_store(s3_server.settings(f"s3://{bucket}/p", secrets.token_hex(24)))
    with pytest.raises(ClientError) as refused:
        wrong_key.get_bytes("k")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    no_bucket = open_store(s3_server.settings(f"s3://missing-{uuid.uuid4().hex[:12]}/p"))
    with pytest.raises(ClientError) as missing:
        no_bucket.get_bytes("k")
    assert not isinstance(missing.value, ObjectNotFoundError)
    assert missing.value.response["Error"]["Code"] == "NoSuchBucket"


def test_s3_and_local_backends_agree(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    """Code written against a local folder runs unchanged on S3: same keys, same frames."""
    on_s3 = observe(open_store(s3_server.settings(f"s3://{bucket}/parity")))
    local = observe(LocalStore(tmp_path / "store"))
    assert on_s3[:2] == local[:2]
    assert on_s3[3] is local[3] is True
    pd.testing.assert_frame_equal(on_s3[2], local[2])
    assert len(on_s3[0]) == 5


@dataclass(frozen=True)
class ScriptRun:
    """s3proxy.sh with a private state folder and port, as a developer would run it."""

    env: dict[str, str]
    state_dir: Path

    def __call__(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(S3PROXY_SH), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def pid(self) -> int:
        return int((self.state_dir / "s3proxy.pid").read_text().strip())


def _exports(output: str) -> dict[str, str]:
    lines = (line.removeprefix("export ") for line in output.splitlines())
    return dict(line.split("=", 1) for line in lines if line)


def _is_running(pid: int) -> bool:
    """False once the process is gone or a zombie (an unreaped orphan is not running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def script(tmp_path: Path) -> Iterator[ScriptRun]:
    """Stopped at the end whatever the test did."""
    state_dir = tmp_path / "s3proxy"
    run = ScriptRun(_script_env(state_dir, free_port()), state_dir)
    yield run
    run("stop")


def test_script_start_env_and_stop(script: ScriptRun) -> None:
    """What a developer does: start, point the project at it with `env`, use it, stop."""
    started = script("start")
    assert started.returncode == 0, started.stderr
    pid = script.pid()
    assert script("status").returncode == 0
    exports = _exports(script("env").stdout)
    assert exports["FRAUDSTREAM_STORE__URI"] == "s3://fraudstream/local"
    # A key pair generated for this state folder, readable by its owner only.
    assert exports["FRAUDSTREAM_STORE__S3_ACCESS_KEY_ID"].startswith("local-")
    assert len(exports["FRAUDSTREAM_STORE__S3_SECRET_ACCESS_KEY"]) == 48
    assert (script.state_dir / "credentials").stat().st_mode & 0o077 == 0
    assert (script.state_dir / "s3proxy.conf").stat().st_mode & 0o077 == 0
    settings = StoreSettings.model_validate(
        {key.removeprefix("FRAUDSTREAM_STORE__").lower(): value for key, value in exports.items()}
    )
    store = open_store(settings)  # no create_bucket: start made the bucket
    store.put_bytes("hello.txt", b"hi")
    assert store.list() == ["hello.txt"]

    assert script("stop").returncode == 0
    assert not _is_running(pid)
    assert script("status").returncode == 1
