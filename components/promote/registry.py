"""The MLflow Model Registry side: model folders as versions, their scores and lineage as tags, aliases.

One registered model holds one architecture (its `architecture` tag; by default its name is the
architecture's), so the gate compares a candidate only with a champion of its own family.
A version's artifacts are the model folder (config.json + generator.safetensors), logged under a
run and registered with `create_model_version(source="runs:/<run>/model")`: mlflow's
`register_model` fails on a plain folder. Tags carry lineage (training run, data version,
evaluation set and key, code version) and scores: `metric.<name>` for the version's own
evaluation, and `scores.<evaluation key>` (JSON) for every evaluation it was scored on, which is
how a champion is compared with a later candidate on the same evaluation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CHAMPION = "champion"
CHALLENGER = "challenger"
SCORE_TAG = "scores."
FAMILY_TAG = "architecture"  # on registered models and versions: "xmcgan" or "mirrorgan"
METRIC_TAG = "metric."

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # its background DNS lookup fails on closed networks


def client(tracking_uri: str):
    """An MlflowClient for `tracking_uri` (sqlite:///... locally: mlflow refuses plain folder stores)."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def version_by_alias(mlflow_client, name: str, alias: str):
    """The version `alias` points at, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_architecture(model_dir: str | Path) -> str:
    """The family a model folder records in its config.json (XMC-GAN when it records none)."""
    return json.loads((Path(model_dir) / "config.json").read_text()).get("architecture", "xmcgan")


def check_family(mlflow_client, name: str, architecture: str) -> None:
    """A registered model holds one family, so a champion is only ever compared with, and replaced by,
    its own kind; models registered before families were tagged are XMC-GAN's."""
    from mlflow.exceptions import MlflowException

    try:
        family = mlflow_client.get_registered_model(name).tags.get(FAMILY_TAG, "xmcgan")
    except MlflowException:
        return
    if family != architecture:
        raise ValueError(
            f"registered model {name!r} holds {family} models; register {architecture} models under their own "
            f"name (by default the architecture's: {architecture!r})"
        )


def ensure_registered_model(mlflow_client, name: str, *, architecture: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        description = f"{architecture} text-to-image generators"
        mlflow_client.create_registered_model(name, tags={FAMILY_TAG: architecture}, description=description)


def scores_on(version, evaluation_key: str) -> dict | None:
    """The scores a version holds for one evaluation (from its tags), or None."""
    raw = version.tags.get(SCORE_TAG + evaluation_key)
    return json.loads(raw) if raw else None


def record_scores(mlflow_client, name: str, version: str, evaluation_key: str, scores: dict) -> None:
    mlflow_client.set_model_version_tag(name, version, SCORE_TAG + evaluation_key, json.dumps(scores, sort_keys=True))


def version_with_tags(mlflow_client, name: str, tags: dict):
    """The version of `name` registered with exactly these tags (lineage, scores, decision), if any;
    never for a model of unknown training run, which could be any model."""
    if tags.get("training_run_id", "unknown") == "unknown":
        return None
    wanted = {k: str(v) for k, v in tags.items()}
    for version in mlflow_client.search_model_versions(f"name='{name}'"):
        if all(version.tags.get(k) == v for k, v in wanted.items()):
            return version
    return None


def register_version(
    mlflow_client, *, name: str, architecture: str, run_id: str, artifact_path: str, tags: dict, description: str
):
    """A new version of `name` (a registered model of `architecture`) whose source is the run's artifact folder."""
    check_family(mlflow_client, name, architecture)
    ensure_registered_model(mlflow_client, name, architecture=architecture)
    return mlflow_client.create_model_version(
        name,
        source=f"runs:/{run_id}/{artifact_path}",
        run_id=run_id,
        tags={FAMILY_TAG: architecture, **{k: str(v) for k, v in tags.items()}},
        description=description,
    )


def download_model(name: str, *, tracking_uri: str, alias: str = CHAMPION, dst: str | Path | None = None) -> Path:
    """The model folder of `models:/name@alias` (or `name/version` when `alias` is a version number)."""
    import mlflow

    client(tracking_uri)
    uri = f"models:/{name}/{alias}" if str(alias).isdigit() else f"models:/{name}@{alias}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=None if dst is None else str(dst)))


def load_champion(name: str, *, tracking_uri: str, alias: str = CHAMPION, device: str = "cpu"):
    """`models:/<name>@<alias>` as a TextToImage ready to sample."""
    from model.sampling import TextToImage

    return TextToImage.from_pretrained(download_model(name, tracking_uri=tracking_uri, alias=alias), device=device)
