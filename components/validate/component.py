"""kfp component: validate every source's records and embeddings, and hand on one processed dataset."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate(
    records: Input[list[Dataset]],
    embeddings: Input[list[Dataset]],
    sources: list[str],
    settings: dict,
    dataset: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    """Great Expectations over the merged tables; fails the run (and stops it) on any breach.
    `settings`: ValidateConfig fields (the pipeline's `validate` parameter)."""
    import shutil
    import tempfile

    from components.data_version import data_version
    from components.kfp_metrics import log_metrics
    from components.settings import step_config
    from components.validate import ValidateConfig, failure_lines, run_validate
    from components.validate.merge import merge_roots

    merge_roots([r.path for r in records] + [e.path for e in embeddings], dataset.path)
    config = step_config(
        "validate",
        ValidateConfig,
        settings,
        data_root=dataset.path,
        report_dir=tempfile.mkdtemp(),
        sources=tuple(sources),
        require_embeddings=True,
    )
    summary = run_validate(config=config)
    shutil.copy(summary["reports"]["html"], report.path)
    log_metrics(metrics, {"checks_passed": summary["passed"], "checks_failed": summary["failed"]})
    if not summary["success"]:
        raise RuntimeError("data validation failed:\n" + "\n".join(failure_lines(summary["results"])))
    dataset.metadata["data_version"] = data_version(dataset.path)
