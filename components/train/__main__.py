"""python -m components.train --data-root DIR --run-dir DIR [options]: train XMC-GAN.

Options come from model.training.TrainConfig (defaults < the preset's recipe < params.yaml `train`
section < command line); config.json in the run folder records where each value came from. With
--nproc-per-node N > 1 the run starts N processes through torchrun (one per GPU, or gloo
processes on CPU).
"""

from __future__ import annotations

import argparse
import json
import sys

from model.training import TrainConfig

from ..cli import config_parser, parse_config
from .run import run_training
from .tracking import DEFAULT_TRACKING_URI


def parse_arguments(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The validated training config and the launch options (processes, tracking)."""
    parser = config_parser(doc=__doc__, prog="python -m components.train", config_class=TrainConfig, section="train")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes on this machine (default: 1)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI; 'none' to disable")
    parser.add_argument("--experiment", default="xmcgan", help="MLflow experiment name")
    parser.add_argument("--run-name", default=None, help="MLflow run name")
    config, args = parse_config(parser, argv)
    if args.nproc_per_node < 1:
        parser.error("--nproc-per-node must be at least 1")
    return config, args


def main(argv: list[str] | None = None) -> None:
    config, args = parse_arguments(argv)
    tracking = None if args.tracking_uri == "none" else args.tracking_uri
    summary = run_training(
        config=config,
        nproc_per_node=args.nproc_per_node,
        tracking_uri=tracking,
        experiment=args.experiment,
        run_name=args.run_name,
    )
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
