"""Where the served model folder comes from: a local folder or the MLflow Model Registry.

    /path/to/model_dir           a folder as written by TextToImage.save_pretrained
    models:/NAME@ALIAS           the registered version the alias points to (default alias: champion)
    models:/NAME/VERSION         one registered version

An alias is resolved to its version number once, then that version is downloaded, so the
version the server reports is the one it loaded even if the alias moves meanwhile. A local
folder's version is the SHA-256 prefix of its weights file, so two folders with the same name
but different weights never look alike.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_FILE = "generator.safetensors"
REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))$")


@dataclass(frozen=True)
class ModelSource:
    path: Path  # the local model folder
    version: str  # registry version number, or "sha256:<12 hex>" of a local folder's weights
    uri: str  # what was loaded: models:/NAME/VERSION or the folder's absolute path


@dataclass(frozen=True)
class RegistryRef:
    name: str
    alias: str | None = None
    version: str | None = None


def parse_registry_uri(uri: str) -> RegistryRef | None:
    """models:/NAME@ALIAS or models:/NAME/VERSION as a RegistryRef; None for anything else (a path)."""
    if not uri.startswith("models:/"):
        return None
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(f"model URI {uri!r} is neither models:/NAME@ALIAS nor models:/NAME/VERSION")
    ref = RegistryRef(**match.groupdict())
    if ref.version is not None and not ref.version.isdigit():
        raise ValueError(f"model URI {uri!r}: the version must be a number (use models:/NAME@ALIAS for an alias)")
    return ref


def weights_digest(model_dir: Path) -> str:
    digest = hashlib.sha256()
    with (model_dir / WEIGHTS_FILE).open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:12]


def check_model_dir(model_dir: Path, described_as: str) -> Path:
    missing = [name for name in ("config.json", WEIGHTS_FILE) if not (model_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{described_as}: {model_dir} is not a model folder; missing {', '.join(missing)}")
    return model_dir


def resolve_model_source(uri: str, *, tracking_uri: str | None = None, download_dir: Path | None = None) -> ModelSource:
    """The local model folder for `uri`, downloading a registered version into `download_dir` if needed."""
    ref = parse_registry_uri(uri)
    if ref is None:
        path = check_model_dir(Path(uri).expanduser().resolve(), "model path")
        return ModelSource(path=path, version=weights_digest(path), uri=str(path))

    import mlflow
    from mlflow import MlflowClient

    # mlflow's own models:/ download reads the process-global registry URI; resolving the version's
    # storage location with a client of our own keeps the configured URI in charge
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = ref.version or client.get_model_version_by_alias(ref.name, ref.alias).version
    pinned = f"models:/{ref.name}/{version}"
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri(ref.name, version),
        tracking_uri=tracking_uri,
        dst_path=None if download_dir is None else str(download_dir),
    )
    return ModelSource(
        path=check_model_dir(Path(local), f"registered model {pinned}"), version=str(version), uri=pinned
    )
