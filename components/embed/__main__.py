"""python -m components.embed --data-root DIR [options]: caption embeddings for ingested records.

Options default to the `embed` section of --params (params.yaml), overridden by the command line.
Lists and dicts are YAML: --sources '[coco]' --max-lengths '{coco: 17}'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..cli import config_parser, parse_config
from .config import EmbedConfig
from .run import run_embed


def parse_arguments(argv: list[str] | None = None) -> tuple[EmbedConfig, argparse.Namespace]:
    parser = config_parser(doc=__doc__, prog="python -m components.embed", config_class=EmbedConfig, section="embed")
    return parse_config(parser, argv)


def main(argv: list[str] | None = None) -> None:
    config, _ = parse_arguments(argv)
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
