"""MLflow tracking of a training run: the model/training.py Reporter, on rank 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.tracking import use_experiment

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
MAX_PARAM_LENGTH = 500  # MLflow's hard limit is 6000; long values go to the config.json artifact instead


def flatten(values: dict, prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}: MLflow params are flat strings."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
            flat[name] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    return flat


class MLflowReporter:
    """Params, per-tick metrics, sample grids per step and the final model folder as run artifacts."""

    def __init__(self, *, tracking_uri: str, experiment: str, run_name: str | None = None, tags: dict | None = None):
        import mlflow

        self.mlflow = mlflow
        use_experiment(tracking_uri, experiment)
        self.run = mlflow.start_run(run_name=run_name, tags=tags or {})
        self.run_id = self.run.info.run_id

    def on_start(self, *, config: dict, model_config: dict, parameters: dict[str, int]) -> None:
        self.mlflow.log_params(flatten({"train": config, "model": model_config}))
        self.mlflow.log_dict({"train": config, "model": model_config}, "config.json")
        self.mlflow.log_metrics({f"parameters_{name}": float(count) for name, count in parameters.items()}, step=0)

    def on_tick(self, *, images_seen: int, stats: dict[str, float]) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in stats.items() if np.isfinite(v)}, step=images_seen)

    def on_samples(self, *, images_seen: int, grid: np.ndarray, captions: list[str]) -> None:
        self.mlflow.log_image(grid, key="samples", step=images_seen)
        self.mlflow.log_text("\n".join(captions), "samples/captions.txt")

    def on_end(self, *, model_dir: Path, summary: dict) -> None:
        self.mlflow.log_artifacts(str(model_dir), artifact_path="model")
        self.mlflow.log_dict(summary, "summary.json")
        self.mlflow.log_metrics({"images_seen": float(summary["images_seen"]), "wall_seconds": summary["wall_seconds"]})

    def close(self, *, failed: bool = False) -> None:
        self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
