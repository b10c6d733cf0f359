"""kfp component: FID / KID, R-precision (and the DAMSM one) of a trained generator on a fixed, seeded caption set."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    dataset: Input[Dataset],
    source: str,
    protocol: str,
    num_samples: int,
    runs: int,
    rprecision_candidates: int,
    rprecision_repeats: int,
    demo_shapes: bool,
    untrained_baseline: bool,
    cache_root: str,
    seed: int,
    evaluation: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
    damsm_rprecision: bool = False,
    damsm: dict = {},  # noqa: B006 - kfp parameter defaults are literals
):
    """evaluation.json, report.html, samples.png and caption_set.json, by the named `protocol` ("demo",
    "paper": components/evaluate/protocol.py; num_samples and runs 0 take the protocol's). Real-image
    features and the R-precision dual encoder are cached under cache_root (per data version) and reused. With
    damsm_rprecision, the MirrorGAN paper's DAMSM R-precision is reported too (never gated), by the
    DAMSM the pretrain step trains with the same `damsm` settings (the same cache)."""
    import shutil
    from pathlib import Path

    from components.data_version import data_version
    from components.evaluate import EvalConfig, evaluate
    from components.kfp_metrics import log_metrics

    config = EvalConfig(
        source=source,
        protocol=protocol,
        num_samples=num_samples or None,
        runs=runs or None,
        rprecision_candidates=rprecision_candidates,
        rprecision_repeats=rprecision_repeats,
        seed=seed,
        demo_shapes=demo_shapes,
        untrained_baseline=untrained_baseline,
        cache_dir=cache_root,
        damsm_rprecision=damsm_rprecision,
        damsm=damsm,
    )
    version = dataset.metadata.get("data_version") or data_version(dataset.path)
    summary = evaluate(
        data_root=dataset.path, out_dir=evaluation.path, data_version=version, config=config, model_dir=model.path
    )
    shutil.copy(Path(evaluation.path) / "report.html", report.path)
    log_metrics(metrics, {name: value for name, value in summary["metrics"].items() if isinstance(value, int | float)})
