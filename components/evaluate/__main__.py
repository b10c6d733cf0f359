"""python -m components.evaluate --data-root DIR --out DIR --model DIR [options]: score a generator.

Writes caption_set.json, samples.png, evaluation.json and report.html into --out and prints the
summary. Options come from EvalConfig (defaults < params.yaml `eval` section < command line).
The data version defaults to the DVC hash of --data-root.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from .config import EvalConfig
from .evaluation import evaluate

HELP = {
    "protocol": "demo (200 samples, one run) or paper (XMC-GAN's: 30,000 samples of COCO-2014 val, mean of 3 runs); "
    "the report labels every score comparable to the paper's or not, and why",
    "source": "records source to evaluate on: coco, ln_coco, ln_open_images",
    "split": "records split: val or train",
    "num_samples": "generated images, one per (image, caption) pair of the fixed caption set (default: the protocol's)",
    "runs": "generations of the caption set, noise seeds seed, seed + 1, ...; scores are the mean (default: the "
    "protocol's)",
    "seed": "seed of the caption set choice and of the generation noise",
    "caption_set": "an existing caption_set.json to score on instead of choosing one",
    "generation_batch": "captions per generator batch",
    "extractor": "torch-fidelity feature extractor (tf-inception-2015-12-05, inception-v3-compat, ...)",
    "extractor_weights": "weights file of the extractor (required by inception-v3-compat)",
    "resize": "resize to 299x299: tf1-bilinear or bicubic-antialias",
    "feature_batch": "images per feature-extractor batch",
    "kid_subset_size": "KID subset size (capped at the number of samples)",
    "kid_subsets": "KID subsets",
    "rprecision_encoder": "'dual' (trained here on the training split) or a CLIP hub name / folder",
    "rprecision_candidates": "captions ranked per image (its own and the rest drawn from other images)",
    "rprecision_repeats": "repeats of the negative draw",
    "dual_encoder": "dual encoder settings, YAML map (steps, dim, grid, input_size, backbone_weights, ...)",
    "damsm_rprecision": "also report the MirrorGAN paper's R-precision by DAMSM codes (never gated)",
    "damsm": "DAMSM settings, YAML map (those of the pretrain step share its DAMSM)",
    "damsm_dir": "a pretrained DAMSM folder to score with (default: trained on the data, cached)",
    "demo_shapes": "the data is the demo shapes dataset: also score caption accuracy",
    "grid_captions": "fixed captions in the sample grid",
    "untrained_baseline": "also score a randomly initialised generator of the same architecture",
    "cache_dir": "cache of real-image features and trained dual encoders",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m components.evaluate",
        description=__doc__.split(":", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", type=Path, required=True, help="model folder (config.json + generator.safetensors)")
    parser.add_argument("--data-root", type=Path, required=True, help="processed data root (records/<source>/<split>)")
    parser.add_argument("--out", type=Path, required=True, help="output folder of the evaluation")
    parser.add_argument("--data-version", help="data version recorded with every score (default: DVC hash of records)")
    parser.add_argument("--params", type=Path, help="a params.yaml whose `eval` section gives defaults")
    add_config_arguments(parser, EvalConfig, HELP)
    args = parser.parse_args(argv)
    config = config_from_arguments(parser, args, EvalConfig, section=load_params(args.params, "eval"))
    if not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model} is not a model folder (no config.json)")
    data_version = args.data_version
    if data_version is None:
        from components.data_version import data_version as dvc_hash

        data_version = dvc_hash(args.data_root / "records" / config.source / config.split)
    summary = evaluate(
        data_root=args.data_root,
        out_dir=args.out,
        data_version=data_version,
        config=config,
        model_dir=args.model,
        log=lambda message: print(message, file=sys.stderr),
    )
    json.dump({k: summary[k] for k in ("evaluation_key", "scores", "files", "timings")}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
