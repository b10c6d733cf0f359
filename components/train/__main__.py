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
from pathlib import Path

from model.training import TrainConfig

from ..cli import add_config_arguments, config_from_arguments, load_params
from .launch import run_training
from .tracking import DEFAULT_TRACKING_URI

HELP = {
    "run_dir": "folder for the run: config.json, checkpoints/, model/, summary.json",
    "data_root": "processed data root (records/ and embeddings/ from ingest and embed)",
    "sources": "sources to train on, YAML list (coco, ln_coco, ln_open_images)",
    "encoder": "text encoder whose embeddings to use (hub name or path)",
    "max_lengths": "token length per source, YAML map",
    "preset": "architecture and training recipe: cpu-32 (the demo), cpu-64, xmcgan-128, xmcgan-256 (the authors'); "
    "MirrorGAN: mirrorgan-64 (the demo), mirrorgan-256 (the authors')",
    "model_overrides": "model config fields to override, YAML map",
    "loss_overrides": "loss config fields to override (weights, temperature, ...), YAML map",
    "batch_size": "global batch per optimiser step over all processes (default: the preset's)",
    "grad_accumulation": "micro-batches per optimiser step",
    "d_steps_per_g_step": "discriminator steps per generator step (default: the preset's)",
    "g_lr": "generator learning rate (default: the preset's)",
    "d_lr": "discriminator learning rate (default: the preset's)",
    "betas": "Adam betas, YAML list (default: the preset's)",
    "horizontal_flip": "flip training images at random; off when captions name left and right (default: the preset's)",
    "ema_half_life_images": "half-life of the generator's EMA in images seen (default: the preset's)",
    "ema_rampup": "early half-life = this x images seen, until ema_half_life_images (0: off)",
    "total_images": "the budget: stop after this many real images (default: the preset's)",
    "time_limit_minutes": "also stop at the first tick after this many minutes (0: no limit)",
    "tick_images": "log losses and throughput every this many images",
    "checkpoint_images": "checkpoint every this many images",
    "sample_every_ticks": "log a sample grid every this many ticks",
    "sample_count": "images in the sample grid",
    "keep_checkpoints": "checkpoints kept on disk",
    "seed": "seed of initialisation, data order and noise",
    "workers": "data loader worker processes per training process",
    "amp": "bf16 autocast on GPU",
    "compile": "torch.compile the networks",
    "provenance": "lineage copied into the model folder, YAML map",
    "pretrained": "MirrorGAN presets: the folder `python -m components.pretrain` wrote (DAMSM's STEM and STREAM)",
    "upsample_records": "train on records smaller than the preset's image size, resized up (smoke tests only; "
    "refused otherwise)",
}


def parse_arguments(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """The validated training config and the launch options (processes, tracking)."""
    parser = argparse.ArgumentParser(
        prog="python -m components.train",
        description=__doc__.split(":", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--params", type=Path, help="a params.yaml whose `train` section gives defaults")
    parser.add_argument("--nproc-per-node", type=int, default=1, help="processes on this machine (default: 1)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="MLflow tracking URI; 'none' to disable")
    parser.add_argument("--experiment", default="xmcgan", help="MLflow experiment name")
    parser.add_argument("--run-name", default=None, help="MLflow run name")
    add_config_arguments(parser, TrainConfig, HELP)
    args = parser.parse_args(argv)
    config = config_from_arguments(parser, args, TrainConfig, section=load_params(args.params, "train"))
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
