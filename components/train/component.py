"""kfp component: train XMC-GAN or MirrorGAN (the preset says which), one process per GPU, tracked in MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    source: str,
    preset: str,
    settings: dict,
    embed: dict,
    pretrained: str,
    gpus: int,
    runs_root: str,
    run_name: str,
    tracking_uri: str,
    experiment: str,
    seed: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """The trained generator (EMA weights) as a model folder; returns the MLflow run id.

    The preset gives the architecture and the training recipe; `settings` (the pipeline's `train`
    parameter) sets any model.training.TrainConfig field explicitly (e.g. {"g_lr": 2e-4,
    "total_images": 50000}). The text encoder and token lengths are the embed step's (`embed`: its
    settings), so the embeddings trained on are the ones it made. `pretrained` is the pretrain
    step's folder for MirrorGAN presets ("" for XMC-GAN's). Checkpoints go to
    <runs_root>/<run_name>: a retried step resumes from them."""
    import shutil
    from pathlib import Path

    from components.embed import EmbedConfig
    from components.kfp_metrics import log_metrics
    from components.settings import step_config
    from components.train.run import embedded_encoder, run_training
    from model.training import TrainConfig

    max_lengths = EmbedConfig.from_dict({"data_root": dataset.path, **embed}).max_lengths
    config = step_config(
        "train",
        TrainConfig,
        settings,
        run_dir=str(Path(runs_root) / run_name),
        data_root=dataset.path,
        sources=(source,),
        encoder=embedded_encoder(dataset.path, source, max_lengths[source]),
        max_lengths=max_lengths,
        preset=preset,
        pretrained=pretrained,
        seed=seed,
        provenance={"dataset_data_version": dataset.metadata.get("data_version", "")},
        origins={name: "pipeline train settings" for name in settings},
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
