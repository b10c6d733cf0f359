"""kfp component: caption embeddings of one source's records (Beam, the frozen text encoder)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.container_image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def embed(records: Input[Dataset], source: str, settings: dict, embeddings: Output[Dataset], metrics: Output[Metrics]):
    """Token embeddings, masks and sentence embeddings of every caption of `source`; `settings`:
    EmbedConfig fields (the pipeline's `embed` parameter)."""
    from components.embed import EmbedConfig, run_embed
    from components.kfp_metrics import log_metrics
    from components.settings import step_config

    config = step_config(
        "embed", EmbedConfig, settings, data_root=records.path, output_root=embeddings.path, sources=(source,)
    )
    summary = run_embed(config=config)
    log_metrics(metrics, {"captions": summary["captions"], "captions_per_second": summary["captions_per_second"]})
    embeddings.metadata.update(
        {"source": source, "encoder": config.encoder, "max_length": int(config.max_lengths[source])}
    )
