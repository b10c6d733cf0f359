"""python -m components.ingest --input-root DIR --output-root DIR [options]: raw data -> Parquet records.

Options default to the `ingest` section of --params (params.yaml), overridden by the command line.
Lists and dicts are YAML: --sources '[coco, ln_coco]' --beam-args '[--dask_client_address=tcp://scheduler:8786]'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from .config import IngestConfig
from .pipeline import run_ingest

HELP = {
    "input_root": "folder (or gs://, s3:// URL) holding annotations/ and the image folders",
    "output_root": "where records/, dead_letter/ and counts/ are written",
    "sources": "sources to read: coco, ln_coco, ln_open_images",
    "image_size": "side of the square output images in pixels",
    "resize": "stretch (bilinear, whole image, as the authors) or center_crop (keeps the aspect ratio)",
    "min_image_side": "images with a smaller side are rejected",
    "max_image_pixels": "images declaring more pixels are rejected as decompression bombs",
    "max_caption_chars": "longer captions are rejected",
    "coco_year": "2014 or 2017 when both COCO caption years are present",
    "image_dirs": "image folder per source relative to the input root, with {split} and {year}",
    "shard_bytes": "target bytes per Parquet file: the number of files per source and split follows the data's size",
    "runner": "Beam runner (DirectRunner, FnApiRunner, DataflowRunner, FlinkRunner, ...)",
    "local_workers": "workers of the local runners (DirectRunner, FnApiRunner; other runners ignore it)",
    "local_mode": "threads or processes: how the local runners run their workers",
    "beam_args": "more Beam pipeline options, as a YAML list",
}


def parse_config(argv: list[str] | None = None) -> IngestConfig:
    parser = argparse.ArgumentParser(prog="python -m components.ingest", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--params", type=Path, help="a params.yaml whose `ingest` section gives defaults")
    add_config_arguments(parser, IngestConfig, HELP)
    args = parser.parse_args(argv)
    return config_from_arguments(parser, args, IngestConfig, section=load_params(args.params, "ingest"))


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("components").setLevel(logging.INFO)
    summary = run_ingest(config=config)
    print(json.dumps(summary, indent=2))
    images = summary["images"]
    print(
        f"ingest: {images['written']} of {images['in']} images written, {images['rejected']} rejected "
        f"({', '.join(summary['sources'])}) in {summary['seconds']:.1f} s -> {summary['output_root']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
