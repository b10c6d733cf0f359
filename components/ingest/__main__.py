"""python -m components.ingest --input-root DIR --output-root DIR [options]: raw data -> Parquet records.

Options default to the `ingest` section of --params (params.yaml), overridden by the command line.
Lists and dicts are YAML: --sources '[coco, ln_coco]' --beam-args '[--dask_client_address=tcp://scheduler:8786]'.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..cli import config_parser, parse_config
from .config import IngestConfig
from .run import run_ingest


def parse_arguments(argv: list[str] | None = None) -> tuple[IngestConfig, argparse.Namespace]:
    parser = config_parser(doc=__doc__, prog="python -m components.ingest", config_class=IngestConfig, section="ingest")
    return parse_config(parser, argv)


def main(argv: list[str] | None = None) -> None:
    config, _ = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("components").setLevel(logging.INFO)
    summary = run_ingest(config=config)
    print(json.dumps(summary, indent=2))
    images = summary["images"]
    print(
        f"ingest: {images['written']} of {images['in']} images written, {images['rejected']} rejected "
        f"({', '.join(summary['sources'])}) in {summary['seconds']:.1f} s -> {summary['output_root']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
