"""Where bundles come from: the MLflow model registry, or a plain local folder.

The worker and training both load models through here, so the safety rules live in one place:
a model folder may hold only ``.ubj`` and ``.json`` files, none of them a pickle, and the booster
is read in XGBoost's native format. Training imports this module, never the other way round.

``mlflow`` is imported inside the functions that need it: importing it costs about two seconds
and the worker needs it only when a registry URI is actually used (the no-MLflow demo never does).
Clients are created on first use, never at import. Every process that talks to MLflow does so
through here, and that first use also switches off MLflow's own pickle loading (see
:func:`refuse_mlflow_pickles`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stream_app.model import ModelBundle, ModelLoadError, load_bundle

# What a model folder may contain; anything else (a .pkl, a cloudpickled flavor) is refused.
MODEL_SUFFIXES = frozenset({".ubj", ".json"})
PICKLE_MAGIC = b"\x80"  # every pickle of protocol 2 or later starts with PROTO (0x80)
REGISTRY_SCHEME = "models:/"
# MLflow's switch for its flavors that unpickle (sklearn, pyfunc, statsmodels...); it defaults on.
MLFLOW_PICKLE_SWITCH = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


class UnsafeArtifactError(ModelLoadError):
    """A downloaded model contains a file type we never write, such as a pickle."""


@dataclass(frozen=True)
class RegistryRef:
    """A parsed ``models:/<name>/<version>`` or ``models:/<name>@<alias>``: exactly one is set."""

    name: str
    version: str | None = None
    alias: str | None = None


def refuse_mlflow_pickles() -> None:
    """Switch MLflow's pickle deserialization off for this process, whatever the environment said.

    Our loaders never call an MLflow model loader (they download plain files and read them
    natively), so this is the second lock on the door: any code in the process that calls
    ``mlflow.<flavor>.load_model`` on a pickled model gets an error instead of running the pickle.
    MLflow reads the variable at each load, so setting it before the first load is enough.
    """
    os.environ[MLFLOW_PICKLE_SWITCH] = "false"


def client_for(tracking_uri: str) -> Any:
    """One client per tracking URI; never the global ``mlflow.set_tracking_uri`` state."""
    refuse_mlflow_pickles()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _client(client_or_uri: Any) -> Any:
    return client_for(client_or_uri) if isinstance(client_or_uri, str) else client_or_uri


def registry_uri(name: str, version: str) -> str:
    return f"{REGISTRY_SCHEME}{name}/{version}"


def check_safe_files(folder: Path, allowed_suffixes: frozenset[str] = MODEL_SUFFIXES) -> list[Path]:
    """Every file under ``folder``, after checking none is a pickle or an unexpected type."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in files:
        if path.suffix.lower() not in allowed_suffixes:
            raise UnsafeArtifactError(f"refusing {path.name}: only {sorted(allowed_suffixes)}")
        with path.open("rb") as handle:
            if handle.read(1) == PICKLE_MAGIC:
                raise UnsafeArtifactError(f"refusing {path.name}: it is a pickle")
    return files


def load_folder(folder: Path, nthread: int = 1) -> ModelBundle:
    """A local bundle, held to the same file rules as a downloaded one."""
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist")
    check_safe_files(folder, MODEL_SUFFIXES)
    return load_bundle(folder, nthread=nthread)


def load_version(client: Any, name: str, version: str, nthread: int = 1) -> ModelBundle:
    """Download a version's files, refuse anything but .ubj/.json, load them natively."""
    refuse_mlflow_pickles()
    import mlflow.artifacts

    uri = client.get_model_version_download_uri(name, version)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=tmp, tracking_uri=client.tracking_uri
        )
        bundle = load_folder(Path(local), nthread=nthread)
    if (bundle.metadata.name, bundle.metadata.version) != (name, str(version)):
        raise ModelLoadError(
            f"{name} v{version} holds metadata for "
            f"{bundle.metadata.name} v{bundle.metadata.version}"
        )
    return bundle


def alias_version(client_or_uri: Any, name: str, alias: str) -> str:
    """The version number ``alias`` points at right now."""
    return str(_client(client_or_uri).get_model_version_by_alias(name, alias).version)


def load_champion(
    client_or_uri: Any, name: str, alias: str = "champion", nthread: int = 1
) -> ModelBundle:
    """The bundle behind ``models:/<name>@<alias>``, in native format (never unpickled).

    The alias is resolved with the given client rather than a ``models:/`` URI, because MLflow
    resolves those through the process-global registry URI.
    """
    client = _client(client_or_uri)
    return load_version(client, name, alias_version(client, name, alias), nthread)


def parse_model_uri(uri: str) -> RegistryRef | Path:
    """A registry reference or a local folder; other schemes (runs:/, s3://) are refused
    because only registered versions carry the name and version the worker reports."""
    if uri.startswith(REGISTRY_SCHEME):
        return _parse_registry_ref(uri.removeprefix(REGISTRY_SCHEME))
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri or uri.startswith("runs:/"):
        raise ModelLoadError(f"unsupported model uri {uri!r}: use models:/ or a local folder")
    return Path(uri)


def _parse_registry_ref(rest: str) -> RegistryRef:
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if name and alias:
            return RegistryRef(name=name, alias=alias)
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return RegistryRef(name=name, version=version)
    raise ModelLoadError(
        f"bad registry uri models:/{rest}: expected models:/<name>/<version> or @<alias>"
    )


class ModelStore:
    """Loads bundles by URI for one registry; the MLflow client is created on first use.

    One store belongs to one loading thread: it keeps no lock around its lazily built client.
    """

    def __init__(self, tracking_uri: str | None, nthread: int = 1) -> None:
        self.tracking_uri = tracking_uri
        self.nthread = nthread
        self._client: Any = None

    def client(self) -> Any:
        if self.tracking_uri is None:
            raise ModelLoadError("no MLflow tracking URI configured for models:/ URIs")
        if self._client is None:
            self._client = client_for(self.tracking_uri)
        return self._client

    def load(self, uri: str) -> ModelBundle:
        """The bundle at ``uri``: ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or a
        local folder."""
        target = parse_model_uri(uri)
        if isinstance(target, Path):
            return load_folder(target, nthread=self.nthread)
        version = target.version or self.alias_version(target.name, str(target.alias))
        return load_version(self.client(), target.name, version, nthread=self.nthread)

    def alias_version(self, name: str, alias: str) -> str:
        return alias_version(self.client(), name, alias)
