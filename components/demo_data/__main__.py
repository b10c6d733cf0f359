"""python -m components.demo_data --out DIR [options]: write the demo shapes dataset."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.progress import progress_bar

from ..cli import config_parser, parse_config
from .config import DemoDataConfig
from .run import write_demo_dataset


def parse_arguments(argv: list[str] | None = None) -> tuple[DemoDataConfig, argparse.Namespace]:
    parser = config_parser(
        doc=__doc__, prog="python -m components.demo_data", config_class=DemoDataConfig, section="demo"
    )
    return parse_config(parser, argv)


def main(argv: list[str] | None = None) -> None:
    config, _ = parse_arguments(argv)
    with progress_bar(
        total=config.train_images + config.val_images, unit="img", desc="demo data", mininterval=1.0
    ) as bar:
        summary = write_demo_dataset(config, progress=bar.update)
    print(json.dumps(summary, indent=2))
    print(f"demo dataset written to {Path(config.out).resolve()}", file=sys.stderr)


if __name__ == "__main__":
    main()
