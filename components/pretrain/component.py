"""kfp component: pretrain MirrorGAN's DAMSM and STREAM on the validated dataset (cached by data version)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def pretrain(
    dataset: Input[Dataset],
    source: str,
    preset: str,
    damsm: dict,
    stream: dict,
    cache_root: str,
    tracking_uri: str,
    pretrained: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """The pretrained folder (damsm/, stream/, pretrained.json) for the train step; returns the MLflow run id.
    Networks are cached under cache_root/pretrain by data version and settings: the evaluate step's
    DAMSM score reuses the DAMSM trained here."""
    from components.data_version import data_version
    from components.pretrain import PretrainConfig, run_pretraining

    version = dataset.metadata.get("data_version") or data_version(dataset.path)
    config = PretrainConfig(
        data_root=dataset.path,
        out=pretrained.path,
        preset=preset,
        sources=(source,),
        damsm=damsm,
        stream=stream,
        cache_dir=f"{cache_root}/pretrain",
        data_version=version,
    )
    manifest = run_pretraining(config, tracking_uri=tracking_uri or None)
    pretrained.metadata.update({**manifest["versions"], "data_version": version, "preset": preset})
    for name, value in manifest["final"].items():
        metrics.log_metric(name, value)
    return manifest.get("run_id", "")
