"""python -m components.demo_data --out DIR [options]: write the demo shapes dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.progress import progress_bar

from ..cli import add_config_arguments, config_from_arguments, load_params
from .generate import DemoDataConfig, write_demo_dataset

HELP = {
    "out": "folder to write (COCO 2017 layout: annotations/, train2017/, val2017/)",
    "train_images": "number of training images",
    "val_images": "number of validation images",
    "image_size": "side of the square images in pixels (16-1024)",
    "captions_per_image": "COCO-style paraphrases per image (1-10)",
    "two_shape_fraction": "fraction of images with two shapes and relational captions (0-1)",
    "jpeg_quality": "JPEG quality of the written images (1-100)",
    "seed": "random seed; the same seed and options give byte-identical files",
}


def parse_config(argv: list[str] | None = None) -> DemoDataConfig:
    parser = argparse.ArgumentParser(
        prog="python -m components.demo_data", description=__doc__.split(":", 1)[1].strip()
    )
    parser.add_argument("--params", type=Path, help="a params.yaml whose `demo` section gives defaults")
    add_config_arguments(parser, DemoDataConfig, HELP)
    args = parser.parse_args(argv)
    return config_from_arguments(parser, args, DemoDataConfig, section=load_params(args.params, "demo"))


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    with progress_bar(
        total=config.train_images + config.val_images, unit="img", desc="demo data", mininterval=1.0
    ) as bar:
        summary = write_demo_dataset(config, progress=bar.update)
    print(json.dumps(summary, indent=2))
    print(f"demo dataset written to {Path(config.out).resolve()}", file=sys.stderr)


if __name__ == "__main__":
    main()
