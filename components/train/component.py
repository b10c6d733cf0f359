"""kfp component: train XMC-GAN or MirrorGAN (the preset says which), one process per GPU, tracked in MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    source: str,
    max_lengths: dict,
    preset: str,
    train_overrides: dict,
    time_limit_minutes: float,
    gpus: int,
    runs_root: str,
    run_name: str,
    tracking_uri: str,
    experiment: str,
    seed: int,
    model: Output[Model],
    metrics: Output[Metrics],
    pretrained: str = "",
    encoder: str = "",
) -> str:
    """The trained generator (EMA weights) as a model folder; returns the MLflow run id.

    The preset gives the architecture and the training recipe; `train_overrides` sets any
    model.training.TrainConfig field explicitly (e.g. {"g_lr": 2e-4, "total_images": 50000}).
    `pretrained` is the pretrain step's folder for MirrorGAN presets ("" for XMC-GAN's). `encoder`
    is the text encoder whose embeddings to train on; "" takes the one the dataset's embeddings of
    `source` were made with (the embed step's `encoder`, a hub name or a local path).
    Checkpoints go to <runs_root>/<run_name>: a retried step resumes from them."""
    import shutil
    from pathlib import Path

    from components.kfp_metrics import log_metrics
    from components.train.launch import embedded_encoder, run_training
    from model.training import TrainConfig

    config = TrainConfig.from_dict(
        {
            "run_dir": str(Path(runs_root) / run_name),
            "data_root": dataset.path,
            "sources": (source,),
            "encoder": encoder or embedded_encoder(dataset.path, source, int(max_lengths[source])),
            "max_lengths": {name: int(length) for name, length in max_lengths.items()},  # JSON numbers arrive as floats
            "preset": preset,
            "pretrained": pretrained,
            "time_limit_minutes": time_limit_minutes,
            "seed": seed,
            "provenance": {"dataset_data_version": dataset.metadata.get("data_version", "")},
            **train_overrides,
            "origins": {name: "pipeline train_overrides" for name in train_overrides},
        }
    )
    summary = run_training(
        config=config,
        nproc_per_node=max(1, gpus),
        tracking_uri=tracking_uri or None,
        experiment=experiment,
        run_name=run_name,
    )
    shutil.copytree(summary["model_dir"], model.path, dirs_exist_ok=True)
    model.metadata.update(
        {"training_run_id": summary.get("run_id", ""), "preset": preset, "images_seen": summary["images_seen"]}
    )
    log_metrics(metrics, {key: summary[key] for key in ("images_seen", "steps", "wall_seconds")})
    return summary.get("run_id", "")
