"""MLflow experiments whose artifacts live beside their tracking database.

With a `sqlite:///DIR/mlflow.db` store, MLflow's default artifact location is `./mlruns` of
whatever folder a process happens to run in: runs would scatter their artifacts across working
directories. Experiments created here keep them in `DIR/mlartifacts` instead; remote tracking
servers keep their own default (their artifact store).
"""

from __future__ import annotations

from pathlib import Path


def artifact_location(tracking_uri: str) -> str | None:
    """`DIR/mlartifacts` as a file URI for a sqlite store at DIR/..., else None (the server decides)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts").as_uri()


def use_experiment(tracking_uri: str, name: str) -> str:
    """Make `name` the active experiment of `tracking_uri`, creating it where its artifacts belong; returns its id."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location(tracking_uri))
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
