"""Embedding throughput: the Beam embed pipeline against a bare batched forward of the same encoder.

Both encode the same captions (the demo dataset's COCO-style captions) with
model.text_encoder.TextEncoder at the same max length and batch size. The bare forward is the
baseline, measured in the same run: load the encoder, then one forward per batch, nothing else.
The pipeline is timed end to end in the same process: runner start, model load on the worker,
reading records, encoding, writing the embedding Parquet. Printed: captions/s of both and the
ratio pipeline / bare forward (target: at least 0.8); also the steady-state ratio without the
fixed costs (model load, runner start), which is what large datasets see. The two sides alternate
`--repeats` times and the best time of each counts, which damps the noise of a shared machine.

    python benchmarks/bench_embed.py [--captions 6000] [--max-length 17] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.demo_data.scenes import captions, sample_scene
from components.embed import EmbedConfig, run_embed
from model.data import RECORD_SCHEMA, records_dir
from model.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder

CAPTIONS_PER_IMAGE = 5


def write_caption_records(root: Path, count: int) -> list[str]:
    """Records carrying `count` demo captions (5 per image, no pixels: only captions are read); returns them."""
    rows, texts = [], []
    for index in range(count // CAPTIONS_PER_IMAGE):
        rng = random.Random(index)
        image_captions = captions(sample_scene(rng, two_shape_fraction=0.3), rng, CAPTIONS_PER_IMAGE)
        texts += image_captions
        rows.append(
            {
                "image_id": str(index),
                "source": "coco",
                "split": "train",
                "file_name": f"{index}.jpg",
                "image": b"",
                "width": 1,
                "height": 1,
                "original_width": 1,
                "original_height": 1,
                "captions": image_captions,
            }
        )
    folder = Path(records_dir(root, "coco", "train"))
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), folder / "part-00000.parquet", row_group_size=256)
    return texts


def bare_forward(texts: list[str], *, encoder: str, max_length: int, batch_size: int) -> tuple[float, float]:
    """(seconds including the model load, seconds of the forward passes alone)."""
    started = time.perf_counter()
    model = TextEncoder(encoder, max_length=max_length).double()  # as the pipeline computes (float64)
    loaded = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        model(texts[start : start + batch_size])
    done = time.perf_counter()
    return done - started, done - loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=6000)
    parser.add_argument("--encoder", default=DEFAULT_TEXT_ENCODER)
    parser.add_argument("--max-length", type=int, default=17)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--beam-args", default="", help="extra Beam options, space separated")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    try:
        texts = write_caption_records(work, args.captions)
        TextEncoder(args.encoder, max_length=args.max_length)  # untimed: weights in the page cache for both sides
        config = EmbedConfig(
            data_root=str(work),
            sources=("coco",),
            encoder=args.encoder,
            max_lengths={"coco": args.max_length},
            batch_size=args.batch_size,
            beam_args=tuple(args.beam_args.split()),
        )
        bare_runs, beam_runs = [], []
        for _ in range(args.repeats):
            bare_runs.append(
                bare_forward(texts, encoder=args.encoder, max_length=args.max_length, batch_size=args.batch_size)
            )
            started = time.perf_counter()
            summary = run_embed(config=config)
            beam_runs.append(time.perf_counter() - started)
            if summary["captions"] != len(texts):
                raise SystemExit(f"the pipeline encoded {summary['captions']} captions, expected {len(texts)}")
        with_load, forward_only = min(bare_runs, key=lambda run: run[1])
        load_seconds, beam_seconds = with_load - forward_only, min(beam_runs)
        bare_rate, beam_rate = len(texts) / forward_only, len(texts) / beam_seconds
        steady_rate = len(texts) / max(beam_seconds - load_seconds, 1e-9)
        figures = {
            "captions": len(texts),
            "encoder": args.encoder,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "torch_threads": torch.get_num_threads(),
            "model_load_s": round(load_seconds, 2),
            "bare_forward_captions_per_s": round(bare_rate, 1),
            "bare_forward_with_load_captions_per_s": round(len(texts) / with_load, 1),
            "pipeline_captions_per_s": round(beam_rate, 1),
            "ratio_end_to_end": round(beam_rate / bare_rate, 3),
            "ratio_vs_bare_with_load": round(beam_rate * with_load / len(texts), 3),
            "ratio_without_model_load": round(steady_rate / bare_rate, 3),
            "target_ratio": 0.8,
        }
        print(json.dumps(figures, indent=2))
        print(
            f"embed: Beam pipeline {beam_rate:.1f} captions/s end to end vs bare forward {bare_rate:.1f}/s "
            f"({len(texts)} captions, {args.max_length} tokens): {beam_rate / bare_rate:.2f}x; "
            f"{figures['ratio_vs_bare_with_load']:.2f}x against the forward with its model load (target >= 0.8x)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
