"""kfp component: caption embeddings of one source's records (Beam, the frozen text encoder)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def embed(
    records: Input[Dataset],
    source: str,
    encoder: str,
    max_lengths: dict,
    runner: str,
    embeddings: Output[Dataset],
    metrics: Output[Metrics],
):
    """Token embeddings, masks and sentence embeddings of every caption of `source`."""
    from components.embed import EmbedConfig, run_embed
    from components.kfp_metrics import log_metrics

    summary = run_embed(
        config=EmbedConfig(
            data_root=records.path,
            output_root=embeddings.path,
            sources=(source,),
            encoder=encoder,
            max_lengths={source: int(max_lengths[source])},  # kfp passes JSON numbers as floats
            runner=runner,
        )
    )
    log_metrics(metrics, {"captions": summary["captions"], "captions_per_second": summary["captions_per_second"]})
    embeddings.metadata.update({"source": source, "encoder": encoder, "max_length": int(max_lengths[source])})
