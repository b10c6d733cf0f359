"""The evaluation step: score a generator on a fixed caption set and write evaluation.json + report.html.

Everything is scored through a plain callable `generate(captions, seed) -> uint8 (n, H, W, 3)`, so
the metrics run alike on a trained model, an untrained one, or images a test constructs; a model
folder becomes such a callable in `generator_from_model_dir`. Each image set (the model, an
optional untrained baseline, the real images of the caption set as the ceiling) gets FID and KID
against the real images of the split, R-precision, and on the demo data caption accuracy. A
protocol's runs (components/evaluate/protocol.py) generate the same captions with consecutive noise
seeds; each score is the mean over runs, its spread is kept beside it, and every metric is labelled
comparable to the paper's number or not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from PIL import Image
from safetensors.torch import load_file, save_file

from components import atomic
from components.demo_data import caption_accuracy

from .config import DUAL, EvalConfig
from .damsm import damsm_encoder_for, damsm_scores
from .data import CaptionSet, SplitImages, choose_caption_set, read_split, read_table, rows_of
from .dual_encoder import dual_encoder_for
from .fidelity import (
    FeatureStatistics,
    RealFeaturesKey,
    cached_real_features,
    create_extractor,
    extract_features,
    fid_kid,
)
from .protocol import COCO_2014_VAL_PREFIX, paper_labels
from .report import png_bytes, render_html, sample_grid
from .rprecision import CLIPEncoder, ImageTextEncoder, caption_pool, score_images

Generate = Callable[[list[str], int], np.ndarray]
METRIC_KEYS = ("fid", "kid_mean", "kid_std", "r_precision", "r_precision_std", "caption_accuracy",
               "damsm_r_precision", "damsm_r_precision_std")  # fmt: skip


def generator_from_pipeline(pipeline, *, batch_size: int = 32) -> Generate:
    """generate(captions, seed): image i drawn from noise (seed, i), captions encoded and generated in batches."""

    def generate(captions: list[str], seed: int) -> np.ndarray:
        out = []
        for start in range(0, len(captions), batch_size):
            chunk = list(captions[start : start + batch_size])
            keys = [(seed, start + i) for i in range(len(chunk))]
            out.append(pipeline.images(pipeline.text_encoder(chunk), keys))
        return np.concatenate(out)

    return generate


def generator_from_model_dir(model_dir: str | Path, *, batch_size: int = 32) -> tuple[Generate, object]:
    """A model folder (config.json + generator.safetensors) as (generate, TextToImage)."""
    from model.sampling import TextToImage

    pipeline = TextToImage.from_pretrained(model_dir)
    return generator_from_pipeline(pipeline, batch_size=batch_size), pipeline


def untrained_like(pipeline, *, seed: int):
    """A TextToImage of the same architecture and text encoder with freshly initialised generator weights."""
    return pipeline.untrained_copy(seed=seed)


def generate_set(generate: Generate, captions: list[str], *, seed: int) -> np.ndarray:
    images = np.asarray(generate(list(captions), seed))
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(captions):
        raise ValueError(
            f"generate must return uint8 (n={len(captions)}, H, W, 3) images, got {images.dtype} {images.shape}"
        )
    return images


def resize_all(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (n, h, w, 3) -> (n, size[0], size[1], 3), bilinear; unchanged when already that size."""
    if images.shape[1:3] == size:
        return images
    height, width = size
    return np.stack([np.asarray(Image.fromarray(i).resize((width, height), Image.Resampling.BILINEAR)) for i in images])


def mean_caption_accuracy(images: np.ndarray, captions: list[str]) -> float | None:
    """Mean over pairs of the fraction of each caption's facts found in its image (pairs without facts skipped)."""
    scores = [caption_accuracy(image, caption) for image, caption in zip(images, captions, strict=True)]
    scores = [s for s in scores if not math.isnan(s)]
    return float(np.mean(scores)) if scores else None


def rprecision_encoder(config: EvalConfig, *, data_root, data_version: str, log) -> ImageTextEncoder:
    if config.rprecision_encoder == DUAL:
        return dual_encoder_for(
            data_root=data_root,
            source=config.source,
            data_version=data_version,
            config=config.dual_encoder,
            cache_dir=Path(config.cache_dir),
            log=log,
        )
    return CLIPEncoder(config.rprecision_encoder)


def evaluation_key(*parts: dict) -> str:
    """Hash of what makes two evaluations comparable: same key, same set, extractor, encoder and settings."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def caption_set_for(config: EvalConfig, records, *, data_version: str) -> CaptionSet:
    """The pinned caption set (checked against the data version), or the seeded choice from the records."""
    if config.caption_set:
        caption_set = CaptionSet.load(config.caption_set)
        if caption_set.data_version != data_version:
            raise ValueError(
                f"caption set {config.caption_set} was drawn from data version {caption_set.data_version}, "
                f"evaluating data version {data_version}"
            )
        return caption_set
    return choose_caption_set(
        records,
        size=config.num_samples,
        seed=config.seed,
        data_version=data_version,
        source=config.source,
        split=config.split,
    )


REAL_CHUNK_BATCHES = 8  # the real split goes through the extractor this many feature batches at a time


def split_chunks(split_images: np.ndarray | SplitImages, rows: int):
    """The split's images in order, `rows` at a time: streamed from the record files (a SplitImages) or sliced."""
    if isinstance(split_images, SplitImages):
        yield from split_images.batches(rows)
    else:
        for start in range(0, len(split_images), rows):
            yield split_images[start : start + rows]


def streamed_features(
    split_images, image_size: tuple[int, int], extractor, *, batch_size: int, allocate=torch.empty
) -> torch.Tensor:
    """Features of every image of the split in order, read, resized and extracted a few feature batches at a
    time. Each chunk is a whole number of batches, so the extractor sees exactly the batches of one pass over
    the decoded split: the same features, bit for bit. Written into one preallocated float32 tensor,
    `allocate(rows, dim)` (default in memory; the cache gives a memory-mapped file)."""
    features, done = None, 0
    for chunk in split_chunks(split_images, batch_size * REAL_CHUNK_BATCHES):
        part = extract_features(resize_all(chunk, image_size), extractor, batch_size=batch_size)
        if features is None:
            features = allocate(len(split_images), part.shape[1])
        features[done : done + len(part)] = part
        done += len(part)
    if features is None or done != len(split_images):
        raise ValueError(f"the split yielded {done} images, expected {len(split_images)} (at least 1)")
    return features


def real_split_features(split_images, image_size: tuple[int, int], extractor, config, *, key_fields, log):
    """Features of all real images of the split (a SplitImages, streamed from the record files, or a decoded
    array) at the generator's resolution (`image_size`), cached per key: reading, both resizes (to the
    generator's size, then the extractor's to 299 x 299) and the extraction run only on a cache miss, in
    bounded chunks. Returns (features, seconds)."""
    key = RealFeaturesKey(
        **key_fields,
        extractor=extractor.name,
        weights_sha256=extractor.weights_sha256,
        resize=extractor.resize,
        image_size=int(image_size[0]),
        num_images=len(split_images),
    )
    clock = time.perf_counter()
    real_features, cache_hit = cached_real_features(
        key,
        Path(config.cache_dir),
        lambda allocate: streamed_features(
            split_images, image_size, extractor, batch_size=config.feature_batch, allocate=allocate
        ),
    )
    log(f"evaluate: real features of {len(split_images)} images {'from cache' if cache_hit else 'computed'}")
    return real_features, time.perf_counter() - clock


def fid_kid_scores(image_sets: dict, real_features: torch.Tensor, set_rows: list[int], extractor, config) -> dict:
    """FID / KID of each image set against the split's real features; the "real" set's features are rows of those."""
    settings = {"kid_subset_size": config.kid_subset_size, "kid_subsets": config.kid_subsets, "seed": config.seed}
    real_statistics = FeatureStatistics.of(real_features)  # once for every set
    return {
        name: fid_kid(
            real_features[set_rows]
            if name == "real"
            else extract_features(images, extractor, batch_size=config.feature_batch),
            real_features,
            real_statistics=real_statistics,
            **settings,
        )
        for name, images in image_sets.items()
    }


def cached_text_embeddings(encoder: ImageTextEncoder, texts: list[str], cache_dir: Path) -> torch.Tensor:
    """encoder.encode_texts(texts), stored as safetensors under a hash of the encoder's identity and the texts."""
    identity = encoder.describe()
    digest = hashlib.sha256(json.dumps([identity, texts], sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_dir / "caption-embeddings" / f"{digest}.safetensors"
    if path.is_file():
        return load_file(path)["embeddings"]
    embeddings = encoder.encode_texts(texts).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": embeddings}, path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)
    return embeddings


def alignment_scores(image_sets: dict, captions: list[str], records, set_rows, encoder, config) -> dict:
    """R-precision of each image set against its captions (and caption accuracy on the demo data)."""
    pool, owned_by_record = caption_pool(records.captions)
    pool_embeddings = cached_text_embeddings(encoder, pool, Path(config.cache_dir))
    scores = {}
    for name, images in image_sets.items():
        scores[name] = score_images(
            encoder,
            images,
            captions,
            pool,
            pool_embeddings,
            owned_by_record[set_rows],
            candidates=config.rprecision_candidates,
            repeats=config.rprecision_repeats,
            seed=config.seed,
        )
        if config.demo_shapes:
            scores[name]["caption_accuracy"] = mean_caption_accuracy(images, captions)
    return scores


def write_report(out_dir: Path, summary: dict, image_sets: dict, captions: list[str], grid_captions: int) -> None:
    """samples.png (rows: real, then each generator; columns: the first captions) and report.html."""
    count = min(grid_captions, len(captions))
    rows = ["real", *(name for name in image_sets if name != "real")] if count else []
    grid_png = png_bytes(sample_grid({name: image_sets[name][:count] for name in rows})) if rows else None
    if grid_png:
        (out_dir / "samples.png").write_bytes(grid_png)
    html_text = render_html(summary, grid_png=grid_png, grid_rows=rows, grid_captions=captions[:count])
    (out_dir / "report.html").write_text(html_text)


def evaluate(
    *,
    data_root: str | Path,
    out_dir: str | Path,
    data_version: str,
    config: EvalConfig | None = None,
    model_dir: str | Path | None = None,
    generate: Generate | None = None,
    encoder: ImageTextEncoder | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Score a model folder (or a `generate` callable) and write caption_set.json, samples.png,
    evaluation.json and report.html into `out_dir`. `encoder` overrides the configured R-precision
    encoder. Returns the evaluation summary (the content of evaluation.json)."""
    config = config or EvalConfig()
    if (model_dir is None) == (generate is None):
        raise ValueError("give exactly one of model_dir and generate")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.unpublish(out_dir / "evaluation.json")  # until this evaluation is complete
    pipeline, provenance = None, {}
    if model_dir is not None:
        generate, pipeline = generator_from_model_dir(model_dir, batch_size=config.generation_batch)
        provenance = dict(pipeline.provenance)

    records = read_split(data_root, config.source, config.split)  # images streamed, never all decoded
    caption_set = caption_set_for(config, records, data_version=data_version)
    caption_set.save(out_dir / "caption_set.json")
    captions, set_rows = list(caption_set.captions), rows_of(caption_set, records)
    log(f"evaluate: caption set {caption_set.id}, {len(caption_set)} pairs from {config.source}/{config.split}")

    generators = {"model": generate}
    if config.untrained_baseline:
        if pipeline is None:
            raise ValueError("untrained_baseline needs a model folder (its architecture is what gets re-initialised)")
        untrained = untrained_like(pipeline, seed=config.seed)
        generators["untrained"] = generator_from_pipeline(untrained, batch_size=config.generation_batch)
    extractor = create_extractor(config.extractor, weights=config.extractor_weights, resize=config.resize)
    split_fields = {"data_version": data_version, "source": config.source, "split": config.split}
    timings: dict[str, float] = {}
    per_run, shown, encoder_info, damsm = [], None, None, None
    for run, seed in enumerate(config.seeds):  # the same captions, each run with its own noise seed
        with _timed(timings, "generate_seconds"):
            image_sets = {name: generate_set(g, captions, seed=seed) for name, g in generators.items()}
        if run == 0:  # what does not depend on the noise: the real images and the encoders
            image_size = image_sets["model"].shape[1:3]
            real_features, timings["real_features_seconds"] = real_split_features(
                records.images, image_size, extractor, config, key_fields=split_fields, log=log
            )
            image_sets["real"] = resize_all(records.images[set_rows], image_size)  # the ceiling, at the model's size
            shown = image_sets
            with _timed(timings, "rprecision_seconds"):
                encoder = encoder or rprecision_encoder(config, data_root=data_root, data_version=data_version, log=log)
            encoder_info = encoder.describe()
            if config.damsm_rprecision:  # the MirrorGAN paper's protocol, beside the independent one (never gated)
                with _timed(timings, "damsm_rprecision_seconds"):
                    damsm = damsm_encoder_for(config, data_root=data_root, data_version=data_version, log=log)
        with _timed(timings, "generated_features_seconds"):
            scores = fid_kid_scores(image_sets, real_features, set_rows, extractor, config)
        with _timed(timings, "rprecision_seconds"):
            for name, alignment in alignment_scores(image_sets, captions, records, set_rows, encoder, config).items():
                scores[name].update(alignment)
        if damsm is not None:
            with _timed(timings, "damsm_rprecision_seconds"):
                for name, values in damsm_scores(image_sets, captions, records, set_rows, damsm, config).items():
                    scores[name].update(values)
        per_run.append(scores)
        if len(config.seeds) > 1:
            log(f"evaluate: run {run + 1} of {len(config.seeds)} (noise seed {seed}): {json.dumps(_metrics(scores))}")
    scores, spread = mean_over_runs(per_run)

    produced_by = {
        "extractor": extractor.describe(),
        "torch_fidelity": torch_fidelity.__version__,
        "image_size": int(image_size[0]),
        "num_generated": len(captions),
        "num_real": len(records),
        "generation": {
            "seeds": list(config.seeds),
            "noise": "image i of a run from (its seed, i), model.sampling.image_noise; scores: the mean over runs",
        },
        "rprecision_encoder": encoder_info,
        "rprecision": {"candidates": config.rprecision_candidates, "repeats": config.rprecision_repeats},
        "kid": {"kid_subset_size": config.kid_subset_size, "kid_subsets": config.kid_subsets},
        **({"damsm_rprecision_encoder": damsm.describe()} if damsm else {}),
    }
    comparable = {
        "data_version": data_version,
        "caption_set": caption_set.id,
        **{k: v for k, v in produced_by.items() if k not in ("torch_fidelity", "damsm_rprecision_encoder")},
        "rprecision_encoder": encoder_info.get("version") or encoder_info.get("weights_sha256") or encoder_info["name"],
    }
    paper = paper_labels(
        list(_metrics(scores)["model"]),
        runs=len(config.seeds),
        protocol=config.protocol,
        num_generated=len(captions),
        extractor=extractor.name,
        packaged_weights=config.extractor_weights is None,
        resize=extractor.resize,
        source=config.source,
        split=config.split,
        demo_shapes=config.demo_shapes,
        num_real=len(records),
        coco_2014_val_files=_coco_2014_val_files(data_root, config),
    )
    generated_count = len(config.seeds) * len(generators) * len(captions)
    summary = {
        "model": {"path": str(model_dir) if model_dir is not None else None, "provenance": provenance},
        "data_version": data_version,
        "data_root": str(data_root),
        "source": config.source,
        "split": config.split,
        "protocol": config.protocol,
        "caption_set": {"id": caption_set.id, "size": len(caption_set), "path": str(out_dir / "caption_set.json")},
        "evaluation_key": evaluation_key(comparable),
        "metrics": _metrics(scores)["model"],
        "scores": _metrics(scores),
        "paper": paper,  # every metric: comparable to the paper's number or not, and why
        "runs": {
            "seeds": list(config.seeds),
            "scores": {name: [_metrics(r)[name] for r in per_run if name in r] for name in scores},
            "std": spread,
        },
        "details": scores,
        "produced_by": produced_by,
        "config": config.to_dict(),
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "files": {name: str(out_dir / name) for name in ("evaluation.json", "report.html", "caption_set.json")},
    }
    write_report(out_dir, summary, shown, captions, config.grid_captions)
    total = time.perf_counter() - started
    summary["timings"].update(
        total_seconds=round(total, 2), generated_images_per_second=round(generated_count / total, 3)
    )
    atomic.write_text(out_dir / "evaluation.json", json.dumps(summary, indent=2))  # the step's result, last
    log(f"evaluate: {json.dumps(summary['scores'])}")
    return summary


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str):
    """Add the block's wall time to timings[key] (runs add up)."""
    clock = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - clock


def _metrics(scores: dict) -> dict:
    """Per image set, only the metrics (METRIC_KEYS) of its details."""
    return {name: {k: v for k, v in s.items() if k in METRIC_KEYS} for name, s in scores.items()}


def mean_over_runs(per_run: list[dict]) -> tuple[dict, dict]:
    """(scores, spread) from each run's {image set: details}: a set's details with every metric the mean
    over the runs that scored it (None if a run had none), and each metric's sample standard deviation
    over those runs (None below 2 runs). The real set is scored in the first run only."""
    scores, spread = {}, {}
    for name, first in per_run[0].items():
        runs = [r[name] for r in per_run if name in r]
        scores[name], spread[name] = dict(first), {}
        for metric in METRIC_KEYS:
            if metric not in first:
                continue
            values = [r[metric] for r in runs]
            if None in values or len(values) == 1:
                scores[name][metric] = None if None in values else values[0]
                spread[name][metric] = None
            else:
                scores[name][metric] = float(np.mean(values))
                spread[name][metric] = float(np.std(values, ddof=1))
    return scores, spread


def _coco_2014_val_files(data_root, config: EvalConfig) -> bool:
    """Whether every record of the split is a COCO-2014 val image by its file name (ingest keeps the annotation's)."""
    names = read_table(data_root, config.source, config.split, columns=["file_name"])["file_name"].to_pylist()
    return all(name.startswith(COCO_2014_VAL_PREFIX) for name in names)
