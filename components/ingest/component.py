"""kfp component: ingest one source of the raw inputs with Apache Beam."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest(
    raw: Input[Dataset],
    source: str,
    image_size: int,
    resize: str,
    runner: str,
    records: Output[Dataset],
    metrics: Output[Metrics],
):
    """Parquet records, dead letters and counts of `source` (coco, ln_coco, ln_open_images)."""
    from components.ingest import IngestConfig, run_ingest
    from components.kfp_metrics import log_metrics
    from components.raw_data import input_root

    summary = run_ingest(
        config=IngestConfig(
            input_root=input_root(raw.path),
            output_root=records.path,
            sources=(source,),
            image_size=image_size,
            resize=resize,
            runner=runner,
        )
    )
    log_metrics(
        metrics, {f"images_{outcome}": count for outcome, count in summary["images"].items()}
    )  # in = written + rejected
    records.metadata.update({"source": source, "raw_data_version": raw.metadata.get("data_version", "")})
