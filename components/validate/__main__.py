"""python -m components.validate --data-root DIR [options]: check the ingested data; exit 1 on any breach.

Options default to the `validate` section of --params (params.yaml), overridden by the command line.
Dicts are YAML: --split-min-images '{train: 1000, val: 100}'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from . import ValidateConfig, failure_lines, run_validate

HELP = {
    "data_root": "ingest's output root (records/, counts/, embeddings/)",
    "report_dir": "where validation.json and validation.html go (default: <data-root>/validation)",
    "sources": "sources to check",
    "image_size": "expected image side in pixels (default: the size ingest recorded)",
    "min_caption_chars": "shortest caption allowed",
    "max_caption_chars": "longest caption allowed",
    "captions_per_image": "[min, max] captions per image, per source",
    "split_min_images": "least images per split",
    "max_dead_letter_fraction": "largest rejected / input fraction per source, split and unit",
    "require_embeddings": "sources that must have caption embeddings, as a YAML list",
}


def parse_config(argv: list[str] | None = None) -> ValidateConfig:
    parser = argparse.ArgumentParser(prog="python -m components.validate", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--params", type=Path, help="a params.yaml whose `validate` section gives defaults")
    add_config_arguments(parser, ValidateConfig, HELP)
    args = parser.parse_args(argv)
    return config_from_arguments(parser, args, ValidateConfig, section=load_params(args.params, "validate"))


def main(argv: list[str] | None = None) -> None:
    summary = run_validate(config=parse_config(argv))
    report = summary["reports"]["html"]
    if not summary["success"]:
        lines = "\n  ".join(failure_lines(summary["results"]))
        sys.exit(f"validation FAILED: {summary['failed']} of {summary['checks']} checks\n  {lines}\nreport: {report}")
    print(
        f"validation passed: {summary['checks']} checks in {summary['seconds']:.1f} s; report: {report}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
