"""python -m components.pretrain --data-root DIR --out DIR [options]: pretrain MirrorGAN's DAMSM and STREAM.

Trains DAMSM (the STEM text encoder with its image encoder) and then STREAM (the captioner) on the
training split, or takes them from the cache when the same data version and settings were trained
before, and writes them into --out for `python -m components.train --preset mirrorgan-32
--pretrained DIR`. Options come from PretrainConfig (defaults < params.yaml `pretrain` section <
command line); `--damsm` and `--stream` take YAML maps of DAMSMConfig / StreamConfig fields.
"""

from __future__ import annotations

import json
import sys

from ..cli import config_parser, parse_config
from . import run_pretraining
from .config import PretrainConfig


def main(argv: list[str] | None = None) -> None:
    parser = config_parser(
        doc=__doc__, prog="python -m components.pretrain", config_class=PretrainConfig, section="pretrain"
    )
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking URI; 'none' to disable")
    config, args = parse_config(parser, argv)
    tracking = None if args.tracking_uri == "none" else args.tracking_uri
    manifest = run_pretraining(config, tracking_uri=tracking, log=lambda message: print(message, file=sys.stderr))
    json.dump(manifest, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
