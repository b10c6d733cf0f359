"""python -m components.promote --evaluation FILE --name NAME [options]: register, gate, move aliases.

Registers the evaluated model as a new version of NAME in the MLflow registry (scores and
lineage as tags), sets `challenger` on it, and moves `champion` to it only when the gate passes.
Writes decision.json into --out. Gate options come from GateConfig (defaults < params.yaml
`gate` section < command line). Exit status 0 either way: not promoting is a decision, not an error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli import config_parser, parse_config
from .config import GateConfig
from .run import promote


def main(argv: list[str] | None = None) -> None:
    parser = config_parser(doc=__doc__, prog="python -m components.promote", config_class=GateConfig, section="gate")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluation.json of the evaluate step")
    parser.add_argument("--name", default="", help="registered model name (default: the model's architecture)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking and registry URI")
    parser.add_argument("--model", type=Path, help="model folder (default: the one the evaluation scored)")
    parser.add_argument("--out", type=Path, help="folder for decision.json (default: beside --evaluation)")
    gate, args = parse_config(parser, argv)
    if not args.evaluation.is_file():
        parser.error(f"--evaluation {args.evaluation} not found")
    summary = promote(
        evaluation=args.evaluation,
        name=args.name,
        tracking_uri=args.tracking_uri,
        out_dir=args.out or args.evaluation.parent,
        gate=gate,
        model_dir=args.model,
        log=lambda message: print(message, file=sys.stderr),
    )
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
