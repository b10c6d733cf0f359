"""XMC-GAN and MirrorGAN side by side on the demo data under one training budget, and MirrorGAN's
ablation of lambda (its STREAM redescription weight: 0 against the default), in README tables.

Each row trains its family's demo preset (cpu-32, mirrorgan-32: both 32x32) with its own recipe for
the same number of real images (`--images`, mirrorgan-32's 48,000 by default; cpu-32's own budget is
180,000), from the same data and seed; MirrorGAN's DAMSM and STREAM are pretrained first (params.yaml
`pretrain` settings) and not counted in its training time. Every
final EMA generator is scored by the evaluation step with one caption set, FID extractor and
independent dual encoder, plus the MirrorGAN paper's DAMSM R-precision (the DAMSM the MirrorGAN
rows trained with: the pretrain step's cache), which is reported, never gated. With several seeds
a cell is mean ± half the range.

    python benchmarks/compare_architectures.py [--data-root data/processed] [--out outputs/compare]
        [--images 48000] [--seeds 0] [--eval-samples 200] [--tables-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from learning_curve import train_run  # noqa: E402

ROWS = {  # row -> (preset, extra TrainConfig settings): each family's demo preset, both at 32x32
    "XMC-GAN (cpu-32)": ("cpu-32", {}),
    "MirrorGAN (mirrorgan-32), lambda 20": ("mirrorgan-32", {}),
    "MirrorGAN (mirrorgan-32), lambda 0": ("mirrorgan-32", {"loss_overrides": {"stream_weight": 0.0}}),
}
METRICS = ("caption_accuracy", "r_precision", "damsm_r_precision", "fid")


def parameters(run_dir: Path) -> tuple[int, int]:
    from safetensors.torch import load_file

    from model.checkpoint import list_checkpoints

    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    return tuple(
        sum(t.numel() for t in load_file(newest / f"{name}.safetensors").values())
        for name in ("generator", "discriminator")
    )


def spread(values: list[float]) -> str:
    values = [0.0 if abs(v) < 1e-9 else v for v in values]  # real images' FID against themselves: 0 up to rounding
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.fmean(values):.3g} ± {(max(values) - min(values)) / 2:.2g}"


def distinct(runs: list[dict]) -> list[dict]:
    """Each result once: every row of a family scores the same untrained generator (per seed), and every row
    the same real images."""
    return [run for index, run in enumerate(runs) if run not in runs[:index]]


def print_tables(rows: dict[str, list[dict]]) -> None:
    names = ["XMC-GAN (cpu-32)", "MirrorGAN (mirrorgan-32), lambda 20", "untrained XMC-GAN", "untrained MirrorGAN",
             "real images"]  # fmt: skip
    print("\n".join(table(rows, names)))
    print()
    print("\n".join(table(rows, ["MirrorGAN (mirrorgan-32), lambda 0", "MirrorGAN (mirrorgan-32), lambda 20"])))


def table(rows: dict[str, list[dict]], names: list[str]) -> list[str]:
    lines = [
        "| | caption accuracy | R-precision (dual encoder, gated) | R-precision (DAMSM, paper's protocol) | FID "
        "| G / D parameters | training images/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        runs = rows[name]
        cells = [spread([r[m] for r in runs]) if runs[0].get(m) is not None else "–" for m in METRICS]
        params = f"{runs[0]['G'] / 1e6:.2f}M / {runs[0]['D'] / 1e6:.2f}M" if "G" in runs[0] else "–"
        speed = spread([r["images_per_second"] for r in runs]) if "images_per_second" in runs[0] else "–"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {params} | {speed} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=ROOT / "data" / "processed")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "compare")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="its `pretrain` section")
    parser.add_argument("--images", type=int, default=48_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--tables-only", action="store_true", help="print the tables of --out/compare.json again")
    args = parser.parse_args()
    if args.tables_only:
        saved = json.loads((args.out / "compare.json").read_text())
        print_tables({name: distinct(runs) for name, runs in saved.items()})
        return

    from components.data_version import data_version
    from components.evaluate.config import EvalConfig
    from components.evaluate.run import evaluate, rprecision_encoder
    from components.pretrain import PretrainConfig, run_pretraining

    settings = (yaml.safe_load(args.params.read_text()) or {}).get("pretrain") or {}
    damsm, stream = settings.get("damsm", {}), settings.get("stream", {})
    version = data_version(args.data_root)
    cache = args.out / "cache"
    started = time.perf_counter()
    pretrained = args.out / "pretrained"
    run_pretraining(PretrainConfig(
        data_root=str(args.data_root), out=str(pretrained), damsm=damsm, stream=stream,
        cache_dir=str(cache / "pretrain"), data_version=version,
    ))  # fmt: skip
    print(f"pretrained DAMSM and STREAM in {(time.perf_counter() - started) / 60:.1f} min", flush=True)

    config = EvalConfig(
        num_samples=args.eval_samples, demo_shapes=True, cache_dir=str(cache), untrained_baseline=True,
        damsm_rprecision=True, damsm=damsm,
    )  # fmt: skip
    encoder = rprecision_encoder(config, data_root=args.data_root, data_version=version, log=lambda m: None)
    rows: dict[str, list[dict]] = {}
    for name, (preset, extra) in ROWS.items():
        for seed in args.seeds:
            out = args.out / preset / ("lambda-0" if "lambda 0" in name else "default") / f"seed-{seed}"
            train_settings = {**extra, "total_images": args.images}
            if preset.startswith("mirrorgan"):
                train_settings["pretrained"] = str(pretrained)
            clock = time.perf_counter()
            run_dir = train_run(out=out, data_root=args.data_root, preset=preset, seed=seed, settings=train_settings)
            seconds = time.perf_counter() - clock
            summary = evaluate(
                data_root=args.data_root, out_dir=out / "eval", data_version=version, config=config,
                model_dir=run_dir / "model", encoder=encoder, log=lambda m: None,
            )  # fmt: skip
            generator, discriminator = parameters(run_dir)
            result = {**summary["scores"]["model"], "G": generator, "D": discriminator,
                      "images_per_second": args.images / seconds, "train_minutes": seconds / 60}  # fmt: skip
            rows.setdefault(name, []).append(result)
            family = name.split(" (")[0]
            rows.setdefault(f"untrained {family}", []).append(summary["scores"]["untrained"])
            rows.setdefault("real images", []).append(summary["scores"]["real"])
            print(f"{name}, seed {seed}: {json.dumps(result)}", flush=True)
    rows = {name: distinct(runs) for name, runs in rows.items()}
    (args.out / "compare.json").write_text(json.dumps(rows, indent=2))
    print()
    print(f"{args.images:,} training images each, {len(args.seeds)} seed(s), {args.eval_samples} evaluation pairs")
    print_tables(rows)


if __name__ == "__main__":
    main()
