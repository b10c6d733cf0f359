"""kfp component: ingest one source of the raw inputs with Apache Beam."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest(raw: Input[Dataset], source: str, settings: dict, records: Output[Dataset], metrics: Output[Metrics]):
    """Parquet records, dead letters and counts of `source` (coco, ln_coco, ln_open_images);
    `settings`: IngestConfig fields (the pipeline's `ingest` parameter)."""
    from components.ingest import IngestConfig, run_ingest
    from components.kfp_metrics import log_metrics
    from components.raw_data import input_root
    from components.settings import step_config

    config = step_config(
        "ingest",
        IngestConfig,
        settings,
        input_root=input_root(raw.path),
        output_root=records.path,
        sources=(source,),
    )
    summary = run_ingest(config=config)
    log_metrics(
        metrics, {f"images_{outcome}": count for outcome, count in summary["images"].items()}
    )  # in = written + rejected
    records.metadata.update({"source": source, "raw_data_version": raw.metadata.get("data_version", "")})
