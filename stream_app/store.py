"""Object store for the lake, drift reports and flags: a local folder or S3 behind one interface.

Keys are ``/``-separated relative paths (``lake/transactions/date=2025-01-01/part-0.parquet``)
and mean the same thing on both backends, so code written against a local folder runs unchanged
on S3. Opening a store has no side effects: folders are created on first write and the boto3
client on first use.
"""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import SecretStr

from stream_app.settings import StoreSettings

S3_SCHEME = "s3://"
FILE_SCHEME = "file://"

# --- the lake's layout, shared by its writers (the simulator, the lake writer) and readers ---

LAKE_TRANSACTIONS = "lake/transactions"
LAKE_LABELS = "lake/labels"
# Parquet column order of each table (the simulator's ground truth columns come after these).
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "amount",
    "currency",
    "merchant_category",
    "transaction_type",
    "device_id",
    "geo_location",
    "timestamp",
)
LABEL_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "is_fraud",
    "labeled_at",
    "source",
    "customer_id",
    "merchant_id",
    "scenario",
)


def lake_key(table: str, date: str, part: str) -> str:
    """One Parquet object per table, event date and writer part: Hive-style date partitions."""
    return f"{table}/date={date}/{part}.parquet"


class ObjectNotFoundError(FileNotFoundError):
    """The key does not exist in the store (same exception for every backend)."""


def _clean_key(key: str) -> str:
    """Reject keys that could escape the store's root; a key is a relative POSIX path."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise ValueError(f"invalid object key: {key!r}")
    return str(path)


def _clean_prefix(prefix: str) -> str:
    """A listing prefix may be empty (everything) and may end with ``/``."""
    if not prefix:
        return ""
    return _clean_key(prefix.rstrip("/")) + ("/" if prefix.endswith("/") else "")


class ObjectStore(ABC):
    """Bytes by key. Writes replace whole objects; there are no partial updates or appends."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; raises ObjectNotFoundError when the key does not exist."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix`` (plain string prefix, as S3 does it), sorted."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Where a key lives, for logs and for tools that take a URI (``file:///...``, ``s3://``)."""


class LocalStore(ObjectStore):
    """A folder on the local disk; writes go to a temporary file first so readers never see half."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as error:
            raise ObjectNotFoundError(self.uri(key)) from error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        prefix = _clean_prefix(prefix)
        if not self.root.is_dir():
            return []
        # Walk only the deepest folder the prefix names, then filter as a plain string prefix.
        folder = self.root / prefix.rpartition("/")[0]
        if not folder.is_dir():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def uri(self, key: str = "") -> str:
        path = self._path(key) if key else self.root
        return path.resolve().as_uri()


class S3Store(ObjectStore):
    """A bucket and key prefix on S3 or an S3-compatible server (MinIO, Ceph, LocalStack)."""

    def __init__(self, bucket: str, prefix: str, settings: StoreSettings) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._settings = settings
        # Any: boto3-stubs types S3 clients only with the mypy-boto3-s3 extra, which we do not pin.
        self._client: Any = None

    @property
    def client(self) -> Any:
        """Created on first use, so opening a store never touches the network or credentials."""
        if self._client is None:
            import boto3  # imported here: only S3 users pay for it

            settings = self._settings
            self._client = boto3.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region,
                aws_access_key_id=_secret(settings.s3_access_key_id),
                aws_secret_access_key=_secret(settings.s3_secret_access_key),
            )
        return self._client

    def _full_key(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)

    def get_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if _is_missing(error):
                raise ObjectNotFoundError(self.uri(key)) from error
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base + _clean_prefix(prefix)):
            keys.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
        return sorted(keys)

    def uri(self, key: str = "") -> str:
        full = self._full_key(key) if key else self.prefix
        return f"{S3_SCHEME}{self.bucket}/{full}" if full else f"{S3_SCHEME}{self.bucket}"


def _is_missing(error: Any) -> bool:
    """S3 says 404 for HEAD and NoSuchKey for GET; compatible servers vary a little."""
    return error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def open_store(settings: StoreSettings) -> ObjectStore:
    """The store ``settings.uri`` names: ``s3://bucket/prefix``, ``file:///path`` or a path."""
    uri = settings.uri
    if uri.startswith(S3_SCHEME):
        bucket, _, prefix = uri[len(S3_SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"S3 store URI has no bucket: {uri!r}")
        return S3Store(bucket, prefix, settings)
    if uri.startswith(FILE_SCHEME):
        uri = uri[len(FILE_SCHEME) :]
    if "://" in uri:
        raise ValueError(f"unsupported store URI scheme: {uri!r} (use a path or s3://)")
    return LocalStore(Path(uri))


def write_parquet(store: ObjectStore, key: str, frame: pd.DataFrame) -> str:
    """Write a frame as one Parquet object (index dropped) and return its URI."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    store.put_bytes(key, sink.getvalue().to_pybytes())
    return store.uri(key)


def read_parquet_prefix(
    store: ObjectStore, prefix: str, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Every ``.parquet`` object under ``prefix`` as one frame, in key order (so dates ascend).

    Hive-style partition values in the keys (``date=...``) are not added as columns: the lake's
    rows already carry their timestamps. No objects gives an empty frame.
    """
    keys = [key for key in store.list(prefix) if key.endswith(".parquet")]
    if not keys:
        return pd.DataFrame(columns=list(columns) if columns else None)
    selected = list(columns) if columns is not None else None
    tables = [pq.read_table(io.BytesIO(store.get_bytes(key)), columns=selected) for key in keys]
    frame: pd.DataFrame = pa.concat_tables(tables, promote_options="default").to_pandas()
    return frame
