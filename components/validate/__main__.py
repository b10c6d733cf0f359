"""python -m components.validate --data-root DIR [options]: check the ingested data; exit 1 on any breach.

Options default to the `validate` section of --params (params.yaml), overridden by the command line.
Dicts are YAML: --split-min-images '{train: 1000, val: 100}'.
"""

from __future__ import annotations

import argparse
import sys

from ..cli import config_parser, parse_config
from . import ValidateConfig, failure_lines, run_validate


def parse_arguments(argv: list[str] | None = None) -> tuple[ValidateConfig, argparse.Namespace]:
    parser = config_parser(
        doc=__doc__, prog="python -m components.validate", config_class=ValidateConfig, section="validate"
    )
    return parse_config(parser, argv)


def main(argv: list[str] | None = None) -> None:
    summary = run_validate(config=parse_arguments(argv)[0])
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
