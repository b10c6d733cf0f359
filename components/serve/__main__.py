"""python -m components.serve [--model-uri URI] [options]: serve the generator over KServe V1 and V2, REST and gRPC."""

from __future__ import annotations

import argparse
import os
import sys

from ..cli import config_parser, parse_config
from .config import ServeConfig


def parse_arguments(argv: list[str] | None = None) -> tuple[ServeConfig, argparse.Namespace]:
    parser = config_parser(doc=__doc__, prog="python -m components.serve", config_class=ServeConfig, section="serve")
    return parse_config(parser, argv)


def main(argv: list[str] | None = None) -> None:
    config, _ = parse_arguments(argv)
    # MKL's strict reproducible mode, read when MKL first runs: with it a batched image equals the
    # same image made alone (the predictor checks this at load; see rendering.batch_invariant_math)
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    del sys.argv[1:]  # kserve parses sys.argv when imported; these options are ours, not its
    from .run import serve

    sys.exit(serve(config))


if __name__ == "__main__":
    main()
