"""kfp component: FID / KID, R-precision (and the DAMSM one) of a trained generator on a fixed, seeded caption set."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    dataset: Input[Dataset],
    source: str,
    seed: int,
    cache_dir: str,
    settings: dict,
    pretrain: dict,
    evaluation: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """evaluation.json, report.html, samples.png and caption_set.json; `settings`: EvalConfig fields
    (the pipeline's `evaluate` parameter: the named protocol, "demo" or "paper", and any field over
    it). Real-image features and the R-precision dual encoder are cached under cache_dir (per data
    version) and reused. The DAMSM R-precision (damsm_rprecision, never gated) uses the pretrain
    step's DAMSM settings (`pretrain`: its settings), so it scores with the DAMSM trained there."""
    import shutil
    from pathlib import Path

    from components.data_version import data_version
    from components.evaluate import EvalConfig, evaluate
    from components.kfp_metrics import log_metrics
    from components.settings import step_config

    config = step_config(
        "evaluate",
        EvalConfig,
        settings,
        source=source,
        seed=seed,
        cache_dir=cache_dir,
        damsm=pretrain.get("damsm", {}),
    )
    version = dataset.metadata.get("data_version") or data_version(dataset.path)
    summary = evaluate(
        data_root=dataset.path, out_dir=evaluation.path, data_version=version, config=config, model_dir=model.path
    )
    shutil.copy(Path(evaluation.path) / "report.html", report.path)
    log_metrics(metrics, {name: value for name, value in summary["metrics"].items() if isinstance(value, int | float)})
