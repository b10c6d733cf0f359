"""The pretraining step: MirrorGAN's DAMSM and STREAM trained on the ingested training split, each
cached under `cache_dir` by the hash of what determines it (data version, sources, config), so a
second run on the same data reuses them, and the evaluation's DAMSM score takes the very DAMSM a
MirrorGAN run trained with (same data version and DAMSM config: same folder).

Output folder (TrainConfig.pretrained):
    damsm/           model/mirrorgan/damsm.py DAMSM folder: STEM, vocabulary, image encoder layers
    stream/          STREAM's learned layers, its config and the same vocabulary
    pretrained.json  versions (the cache keys), data version, configs, each epoch's losses
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from components import atomic
from components.evaluate.data import read_records
from components.evaluate.fidelity import default_tf_inception_path, file_sha256
from model.mirrorgan.config import DAMSMConfig, StreamConfig
from model.mirrorgan.damsm import DAMSM, InceptionTrunk
from model.mirrorgan.pretraining import inception_features, stream_features, train_damsm, train_stream
from model.mirrorgan.stream import STREAM
from model.mirrorgan.training import PRETRAINED_MANIFEST
from model.mirrorgan.vocabulary import Vocabulary

from .config import PretrainConfig

Log = Callable[[str], None]
HISTORY = "history.json"


def version_of(kind: str, **parts) -> str:
    """`kind-<hash>` of everything that determines a pretrained network."""
    return f"{kind}-" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def training_records(data_root: str | Path, sources: tuple[str, ...], *, image_size: int | None = None):
    """Images (uint8, n x H x W x 3, at `image_size` or as ingested) and each image's captions, of every source."""
    import numpy as np

    parts = [read_records(data_root, source, "train", image_size=image_size) for source in sources]
    images = parts[0].images if len(parts) == 1 else np.concatenate([p.images for p in parts])
    return images, [captions for p in parts for captions in p.captions]


def _publish(build: Callable[[Path], None], folder: Path) -> Path:
    """Build into a partial folder and rename it into place: a cached folder is always complete."""
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    build(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.replace(folder)
    return folder


def damsm_for(
    *,
    data_root: str | Path,
    sources: tuple[str, ...],
    data_version: str,
    config: DAMSMConfig,
    cache_dir: str | Path,
    on_epoch: Callable[[str, int, dict], None] | None = None,
    log: Log = print,
) -> Path:
    """The DAMSM folder trained on the training split of `sources` of this data version: cached, or trained now."""
    trunk_path = default_tf_inception_path()
    version = version_of(
        "damsm", data_version=data_version, sources=list(sources), config=config.to_dict(),
        trunk_sha256=file_sha256(trunk_path),
    )  # fmt: skip
    folder = Path(cache_dir) / "damsm" / version
    if (folder / HISTORY).is_file():
        log(f"pretrain: DAMSM {version} from the cache")
        return folder
    started = time.perf_counter()
    images, captions = training_records(data_root, sources)
    vocabulary = Vocabulary.build(c for per_image in captions for c in per_image)
    trunk = InceptionTrunk(trunk_path, image_size=config.image_size)
    regions, pooled = inception_features(images, trunk)
    features_seconds = time.perf_counter() - started
    log(f"pretrain: Inception features of {len(images)} images at {config.image_size} px in {features_seconds:.0f} s")
    damsm, history = train_damsm(
        regions=regions, pooled=pooled, captions_per_image=captions, vocabulary=vocabulary, config=config,
        on_epoch=lambda epoch, losses: on_epoch and on_epoch("damsm", epoch, losses),
    )  # fmt: skip
    meta = {
        "version": version, "images": len(images), "captions": sum(map(len, captions)), "vocabulary": len(vocabulary),
        "features_seconds": round(features_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "history": history,
    }  # fmt: skip
    log(f"pretrain: DAMSM {version}: loss {history[0]['total']:.3f} -> {history[-1]['total']:.3f} "
        f"in {config.epochs} epochs, {meta['seconds']:.0f} s")  # fmt: skip

    def build(partial: Path) -> None:
        damsm.save(partial)
        (partial / HISTORY).write_text(json.dumps(meta, indent=1))

    return _publish(build, folder)


def stream_for(
    *,
    data_root: str | Path,
    sources: tuple[str, ...],
    data_version: str,
    image_size: int,
    config: StreamConfig,
    damsm_folder: Path,
    cache_dir: str | Path,
    on_epoch: Callable[[str, int, dict], None] | None = None,
    log: Log = print,
) -> Path:
    """STREAM trained on the training split at the generator's `image_size`, on DAMSM's vocabulary."""
    damsm = DAMSM.load(damsm_folder)
    vocabulary, max_words = damsm.vocabulary, damsm.config.max_words
    version = version_of(
        "stream", data_version=data_version, sources=list(sources), config=config.to_dict(), image_size=image_size,
        vocabulary=hashlib.sha256("\n".join(vocabulary.words).encode()).hexdigest(), max_words=max_words,
    )  # fmt: skip
    folder = Path(cache_dir) / "stream" / version
    if (folder / HISTORY).is_file():
        log(f"pretrain: STREAM {version} from the cache")
        return folder
    started = time.perf_counter()
    images, captions = training_records(data_root, sources, image_size=image_size)
    stream = STREAM(config, vocab_size=len(vocabulary))
    pooled = stream_features(images, stream.encoder)
    stream, history = train_stream(
        pooled=pooled, captions_per_image=captions, vocabulary=vocabulary, config=config, max_words=max_words,
        stream=stream, on_epoch=lambda epoch, losses: on_epoch and on_epoch("stream", epoch, losses),
    )  # fmt: skip
    meta = {"version": version, "images": len(images), "seconds": round(time.perf_counter() - started, 1),
            "history": history}  # fmt: skip
    log(f"pretrain: STREAM {version}: caption loss {history[0]['caption_loss']:.3f} -> "
        f"{history[-1]['caption_loss']:.3f} in {config.epochs} epochs, {meta['seconds']:.0f} s")  # fmt: skip

    def build(partial: Path) -> None:
        stream.save(partial)
        vocabulary.save(partial)
        (partial / HISTORY).write_text(json.dumps(meta, indent=1))

    return _publish(build, folder)


def pretrain(
    *,
    data_root: str | Path,
    out_dir: str | Path,
    sources: tuple[str, ...],
    data_version: str,
    image_size: int,
    damsm: DAMSMConfig,
    stream: StreamConfig,
    cache_dir: str | Path,
    on_epoch: Callable[[str, int, dict], None] | None = None,
    log: Log = print,
) -> dict:
    """DAMSM, then STREAM on its vocabulary (each from the cache when it holds them), copied into
    `out_dir` with pretrained.json written last. Returns the content of pretrained.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.unpublish(out_dir / PRETRAINED_MANIFEST)
    common = dict(data_root=data_root, sources=sources, data_version=data_version, cache_dir=cache_dir, log=log)
    damsm_folder = damsm_for(**common, config=damsm, on_epoch=on_epoch)
    stream_folder = stream_for(
        **common, image_size=image_size, config=stream, damsm_folder=damsm_folder, on_epoch=on_epoch
    )
    for name, folder in (("damsm", damsm_folder), ("stream", stream_folder)):
        shutil.rmtree(out_dir / name, ignore_errors=True)
        shutil.copytree(folder, out_dir / name)
    histories = {name: json.loads((out_dir / name / HISTORY).read_text()) for name in ("damsm", "stream")}
    manifest = {
        "versions": {"damsm": damsm_folder.name, "stream": stream_folder.name},
        "data_version": data_version,
        "sources": list(sources),
        "image_size": image_size,
        "damsm": damsm.to_dict(),
        "stream": stream.to_dict(),
        "vocabulary": len(Vocabulary.load(out_dir / "damsm")),
        "final": {
            "damsm_loss": histories["damsm"]["history"][-1]["total"],
            "stream_caption_loss": histories["stream"]["history"][-1]["caption_loss"],
        },
    }
    atomic.write_text(out_dir / PRETRAINED_MANIFEST, json.dumps(manifest, indent=1))
    return manifest


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
        reporter.on_end(folder=Path(config.out), manifest=manifest)
        reporter.close()
        manifest = {**manifest, "run_id": reporter.run_id}
    return manifest
