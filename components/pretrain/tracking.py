"""MLflow tracking of a pretraining run: configs, each epoch's losses, the pretrained folder."""

from __future__ import annotations

from pathlib import Path

from components.tracking import use_experiment

EXPERIMENT = "xmcgan-pretrain"


class PretrainReporter:
    def __init__(self, *, tracking_uri: str, experiment: str = EXPERIMENT, run_name: str | None = None, tags=None):
        import mlflow

        self.mlflow = mlflow
        use_experiment(tracking_uri, experiment)
        self.run = mlflow.start_run(run_name=run_name, tags=tags or {})
        self.run_id = self.run.info.run_id

    def on_start(self, config: dict) -> None:
        from components.train.tracking import flatten

        self.mlflow.log_params(flatten(config))

    def on_epoch(self, network: str, epoch: int, losses: dict) -> None:
        self.mlflow.log_metrics({f"{network}_{k}": float(v) for k, v in losses.items()}, step=epoch)

    def on_end(self, *, folder: Path, manifest: dict) -> None:
        self.mlflow.set_tags({f"version.{k}": v for k, v in manifest["versions"].items()})
        self.mlflow.log_metrics({k: float(v) for k, v in manifest["final"].items()})
        self.mlflow.log_artifacts(str(folder), artifact_path="pretrained")

    def close(self, *, failed: bool = False) -> None:
        self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
