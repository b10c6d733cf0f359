"""python -m components.evaluate --data-root DIR --out DIR --model DIR [options]: score a generator.

Writes caption_set.json, samples.png, evaluation.json and report.html into --out and prints the
summary. Options come from EvalConfig (defaults < params.yaml `evaluate` section < command line).
The data version defaults to the DVC hash of --data-root.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cli import config_parser, parse_config
from .config import EvalConfig
from .run import evaluate


def main(argv: list[str] | None = None) -> None:
    parser = config_parser(
        doc=__doc__, prog="python -m components.evaluate", config_class=EvalConfig, section="evaluate"
    )
    parser.add_argument("--model", type=Path, required=True, help="model folder (config.json + generator.safetensors)")
    parser.add_argument("--data-root", type=Path, required=True, help="processed data root (records/<source>/<split>)")
    parser.add_argument("--out", type=Path, required=True, help="output folder of the evaluation")
    parser.add_argument("--data-version", help="data version recorded with every score (default: DVC hash of records)")
    config, args = parse_config(parser, argv)
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
