"""python -m components.pretrain --data-root DIR --out DIR [options]: pretrain MirrorGAN's DAMSM and STREAM.

Trains DAMSM (the STEM text encoder with its image encoder) and then STREAM (the captioner) on the
training split, or takes them from the cache when the same data version and settings were trained
before, and writes them into --out for `python -m components.train --preset mirrorgan-64
--pretrained DIR`. Options come from PretrainConfig (defaults < params.yaml `pretrain` section <
command line); `--damsm` and `--stream` take YAML maps of DAMSMConfig / StreamConfig fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from . import run_pretraining
from .config import PretrainConfig

HELP = {
    "data_root": "processed data root (records/<source>/train from ingest)",
    "out": "output folder: damsm/, stream/, pretrained.json",
    "preset": "the MirrorGAN preset to pretrain for (STREAM learns on images of its size)",
    "image_size": "the generator's image size, when model overrides change the preset's",
    "sources": "sources to pretrain on, YAML list",
    "damsm": "DAMSMConfig fields, YAML map (image_size, epochs, batch_size, lr, gammas, ...)",
    "stream": "StreamConfig fields, YAML map (vgg_layer, input_size, epochs, ...)",
    "cache_dir": "where pretrained networks are kept by data version and settings, and reused",
    "data_version": "data version the cache is keyed by (default: the DVC hash of --data-root)",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m components.pretrain",
        description=__doc__.split(":", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", type=Path, help="a params.yaml whose `pretrain` section gives defaults")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI; 'none' to disable")
    add_config_arguments(parser, PretrainConfig, HELP)
    args = parser.parse_args(argv)
    config = config_from_arguments(parser, args, PretrainConfig, section=load_params(args.params, "pretrain"))
    tracking = None if args.tracking_uri == "none" else args.tracking_uri
    manifest = run_pretraining(config, tracking_uri=tracking, log=lambda message: print(message, file=sys.stderr))
    json.dump(manifest, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
