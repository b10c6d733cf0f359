"""The pretraining step: MirrorGAN's DAMSM (STEM) and STREAM on the ingested training split, cached."""

from .config import PretrainConfig
from .pretraining import damsm_for, pretrain, stream_for


def run_pretraining(config: PretrainConfig, *, tracking_uri: str | None = None, log=print) -> dict:
    """pretrain() for `config`, tracked in MLflow when a tracking URI is given; returns the manifest (+ run id)."""
    from components.data_version import data_version

    version = config.data_version or data_version(config.data_root)
    reporter = None
    if tracking_uri:
        from .tracking import PretrainReporter

        reporter = PretrainReporter(tracking_uri=tracking_uri, tags={"data_version": version})
        reporter.on_start(config.to_dict())
    try:
        manifest = pretrain(
            data_root=config.data_root, out_dir=config.out, sources=config.sources, data_version=version,
            image_size=config.stream_image_size, damsm=config.damsm_config, stream=config.stream_config,
            cache_dir=config.cache_dir, on_epoch=reporter.on_epoch if reporter else None, log=log,
        )  # fmt: skip
    except BaseException:
        if reporter:
            reporter.close(failed=True)
        raise
    if reporter:
        from pathlib import Path

        reporter.on_end(folder=Path(config.out), manifest=manifest)
        reporter.close()
        manifest = {**manifest, "run_id": reporter.run_id}
    return manifest


__all__ = ["PretrainConfig", "damsm_for", "pretrain", "run_pretraining", "stream_for"]
