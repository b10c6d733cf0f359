"""kfp components of the pretraining branch: the architecture of a preset (the branch's condition),
MirrorGAN's pretraining (DAMSM, STREAM; cached by data version), and the XMC-GAN side's empty answer."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def architecture(preset: str) -> str:
    """The model family of a preset: "xmcgan" or "mirrorgan" (model/config.py PRESETS)."""
    from model.config import PRESETS

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset].architecture


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def no_pretraining() -> str:
    """XMC-GAN needs no pretrained networks (its text encoder is a frozen transformers model): no folder."""
    return ""


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def pretrain(
    dataset: Input[Dataset],
    source: str,
    preset: str,
    settings: dict,
    train: dict,
    cache_dir: str,
    runs_root: str,
    run_name: str,
    tracking_uri: str,
    pretrained: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """DAMSM (STEM) and STREAM for the MirrorGAN preset; returns the folder the train step reads
    (<runs_root>/<run_name>/pretrained, on the volume the train step shares), which the `pretrained`
    artifact copies for lineage. `settings`: PretrainConfig fields (the pipeline's `pretrain`
    parameter). Networks are cached under cache_dir/pretrain by data version and settings: the
    evaluate step's DAMSM score reuses the DAMSM trained here. STREAM learns on images of the
    generator's size: the preset's, or that of the train settings' model_overrides."""
    import shutil
    from pathlib import Path

    from components.data_version import data_version
    from components.kfp_metrics import log_metrics
    from components.pretrain import PretrainConfig, run_pretraining
    from components.settings import step_config
    from model.config import preset as preset_configs

    version = dataset.metadata.get("data_version") or data_version(dataset.path)
    folder = Path(runs_root) / run_name / "pretrained"
    config = step_config(
        "pretrain",
        PretrainConfig,
        settings,
        data_root=dataset.path,
        out=str(folder),
        preset=preset,
        image_size=preset_configs(preset, **train.get("model_overrides", {}))[0].image_size,
        sources=(source,),
        cache_dir=f"{cache_dir}/pretrain",
        data_version=version,
    )
    manifest = run_pretraining(config, tracking_uri=tracking_uri or None)
    shutil.copytree(folder, pretrained.path, dirs_exist_ok=True)
    pretrained.metadata.update({**manifest["versions"], "data_version": version, "preset": preset,
                                "mlflow_run_id": manifest.get("run_id", "")})  # fmt: skip
    log_metrics(metrics, manifest["final"])
    return str(folder)
