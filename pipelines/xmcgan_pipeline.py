"""The XMC-GAN pipeline: `python -m pipelines.xmcgan_pipeline run-local` runs it on this machine.

Steps are wired in as they land; today: the demo dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_local(output: Path) -> None:
    from components.demo_data import DemoDataConfig, write_demo_dataset

    summary = write_demo_dataset(DemoDataConfig(out=output / "raw" / "demo"))
    counts = ", ".join(f"{split}: {c['images']} images, {c['captions']} captions" for split, c in summary["splits"].items())
    print(f"demo dataset ({counts}) written to {Path(summary['root']).resolve()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.xmcgan_pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("run-local", help="run the pipeline on this machine on the demo dataset")
    local.add_argument("--output", type=Path, default=Path("data"), help="where data and runs are written")
    args = parser.parse_args(argv)
    run_local(args.output)


if __name__ == "__main__":
    main()
