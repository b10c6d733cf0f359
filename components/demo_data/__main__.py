"""python -m components.demo_data --out DIR [options]: write the demo shapes dataset."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

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
    for field in fields(DemoDataConfig):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "out":
            parser.add_argument(flag, type=Path, required=True, help=HELP[field.name])
        else:
            kind = type(field.default)
            parser.add_argument(
                flag,
                type=kind,
                default=field.default,
                metavar=kind.__name__.upper(),
                help=f"{HELP[field.name]} (default: {field.default})",
            )
    args = parser.parse_args(argv)
    try:
        return DemoDataConfig(**vars(args))
    except ValueError as error:
        parser.error(str(error))


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    with tqdm(total=config.train_images + config.val_images, unit="img", desc="demo data", file=sys.stderr) as bar:
        summary = write_demo_dataset(config, progress=bar.update)
    print(json.dumps(summary, indent=2))
    print(f"demo dataset written to {config.out.resolve()}", file=sys.stderr)


if __name__ == "__main__":
    main()
