"""python -m components.promote --evaluation FILE --name NAME [options]: register, gate, move aliases.

Registers the evaluated model as a new version of NAME in the MLflow registry (scores and
lineage as tags), sets `challenger` on it, and moves `champion` to it only when the gate passes.
Writes decision.json into --out. Gate options come from GateConfig (defaults < params.yaml
`gate` section < command line). Exit status 0 either way: not promoting is a decision, not an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from .gate import GateConfig
from .promotion import promote

HELP = {
    "max_fid": "promote only with FID at most this",
    "min_rprecision": "promote only with R-precision (R@1) at least this",
    "min_caption_accuracy": "on the demo data, promote only with caption accuracy at least this (0: not gated)",
    "fid_tolerance": "how much worse than the champion's FID the candidate may be",
    "rprecision_tolerance": "how much below the champion's R-precision the candidate may be",
    "reevaluate_champion": "score the champion on the candidate's evaluation when it has no such scores",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m components.promote",
        description=__doc__.split(":", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluation.json of the evaluate step")
    parser.add_argument("--name", default="", help="registered model name (default: the model's architecture)")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow tracking and registry URI")
    parser.add_argument("--model", type=Path, help="model folder (default: the one the evaluation scored)")
    parser.add_argument("--out", type=Path, help="folder for decision.json (default: beside --evaluation)")
    parser.add_argument("--params", type=Path, help="a params.yaml whose `gate` section gives defaults")
    add_config_arguments(parser, GateConfig, HELP)
    args = parser.parse_args(argv)
    gate = config_from_arguments(parser, args, GateConfig, section=load_params(args.params, "gate"))
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
