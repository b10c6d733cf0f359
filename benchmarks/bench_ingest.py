"""Ingest throughput: the Beam pipeline on the DirectRunner against a plain single-process loop.

Both do the same work on the same raw data: parse the COCO captions JSON and the Localized
Narratives JSONL (the same parsing functions), then per image read, decode, orient, convert,
resize and encode PNG, and write the records as Parquet with the same schema and shard count.
The loop is the baseline, measured in the same run; the figure is images/s and the ratio
beam / loop (target: at least 0.7), for the DirectRunner with one worker and with two worker
threads (Pillow and zlib release the GIL). Each runs `--repeats` times, the best time counts.
Beam's fixed cost (pipeline construction, runner start: a few seconds) is included, so small
inputs understate it: the default is the demo dataset's size.

    python benchmarks/bench_ingest.py [--train-images 2000] [--input-root DIR] [--variants '...']
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.demo_data import DemoDataConfig, write_demo_dataset
from components.ingest import IngestConfig, run_ingest
from components.ingest.annotations import gather_narratives, iter_lines, parse_coco, parse_narrative
from components.ingest.images import Rejected, process_image
from components.ingest.run import ROWS_PER_ROW_GROUP, discover, record_row
from model.data import RECORD_SCHEMA, records_dir


def plain_loop(config: IngestConfig) -> int:
    """The same per-image work in one process, without Beam; returns the number of images written."""
    candidates = []
    narratives = defaultdict(list)
    for file in discover(config):
        if file.source == "coco":
            opener = functools.partial(open, file.path, "rb")
            candidates += parse_coco(opener, file, max_caption_chars=config.max_caption_chars)[0]
            continue
        with open(file.path, "rb") as stream:
            for line, raw in iter_lines(stream):
                try:
                    narrative = parse_narrative(raw, file, line=line, max_caption_chars=config.max_caption_chars)
                except Rejected:
                    continue
                narratives[(file.source, file.split, narrative.image_id)].append(narrative)
    candidates += [gather_narratives(group)[0] for group in narratives.values()]
    tables = defaultdict(list)
    for c in tqdm(candidates, desc="plain loop", unit="img", file=sys.stderr, mininterval=2):
        try:
            image = process_image(Path(c.image_path).read_bytes(), settings=config.image_settings)
        except Rejected:
            continue
        tables[(c.source, c.split)].append(record_row(c, image))
    for (source, split), rows in tables.items():
        folder = Path(records_dir(config.output_root, source, split))
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=RECORD_SCHEMA), folder / "part-00000.parquet",
                       row_group_size=ROWS_PER_ROW_GROUP)  # fmt: skip
    return sum(len(rows) for rows in tables.values())


def best_time(run, repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        count = run()
        times.append(time.perf_counter() - started)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input-root", type=Path, help="raw data to ingest (default: a demo dataset made here)")
    parser.add_argument("--train-images", type=int, default=2000, help="size of the generated demo train split")
    parser.add_argument("--sources", default="coco,ln_coco")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--variants",
        default="1 threads;2 threads;2 processes",
        help="local workers and mode to compare, variants separated by ';' (the second is the default)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        root = args.input_root
        if root is None:
            root = work / "raw"
            write_demo_dataset(
                DemoDataConfig(out=root, train_images=args.train_images, val_images=args.train_images // 10)
            )

        def config(out: str, variant: str = "1 threads") -> IngestConfig:
            workers, mode = variant.split()
            return IngestConfig(
                input_root=str(root),
                output_root=str(work / out),
                sources=tuple(args.sources.split(",")),
                image_size=args.image_size,
                local_workers=int(workers),
                local_mode=mode,
            )

        loop_seconds, loop_images = best_time(lambda: plain_loop(config("loop")), args.repeats)
        loop_rate = loop_images / loop_seconds
        figures = {"images": loop_images, "plain_loop_images_per_s": round(loop_rate, 1), "target_ratio": 0.7}
        lines = []
        for variant in args.variants.split(";"):
            seconds, images = best_time(
                lambda v=variant: run_ingest(config=config("beam", v))["images"]["written"], args.repeats
            )
            if images != loop_images:
                raise SystemExit(f"the two paths disagree: beam wrote {images} images, the loop {loop_images}")
            rate = images / seconds
            figures[f"beam_direct_runner[{variant}]"] = {
                "images_per_s": round(rate, 1),
                "ratio": round(rate / loop_rate, 3),
            }
            lines.append(
                f"ingest: Beam DirectRunner [{variant}] {rate:.1f} img/s vs plain loop {loop_rate:.1f} img/s "
                f"on {images} images: {rate / loop_rate:.2f}x (target >= 0.7x)"
            )
        print(json.dumps(figures, indent=2))
        print("\n".join(lines))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
