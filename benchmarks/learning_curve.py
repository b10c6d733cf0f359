"""Learning curve of a preset: caption accuracy, R-precision and FID of the EMA generator against images seen.

Trains `--preset` (its recipe, with `--set` overrides of model.training.TrainConfig fields) on the
processed demo data for `--images` images, checkpointing every `--every`; then scores the untrained
generator and every checkpoint's EMA generator with the evaluation step itself
(components.evaluate: the same caption set, FID extractor and independent dual encoder for every
point) and prints one row per point. Every figure is computed from the saved weights, so a
row depends only on the images seen, not on how fast or loaded the machine was.

    python benchmarks/learning_curve.py [--preset cpu-32] [--images 200000] [--every 20000]
        [--set g_lr=2e-4 --set loss_overrides='{vgg_weight: 0}'] [--data-root data/processed] [--out DIR]

The evaluation only (`--score-only`) re-scores the checkpoints of an earlier run in `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = ("images_seen", "caption_accuracy", "r_precision", "r_precision_std", "fid")


def parse_sets(items: list[str]) -> dict:
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects name=value, got {item!r}")
        values[name] = yaml.safe_load(text)
    return values


def train_run(*, out: Path, data_root: Path, preset: str, seed: int, settings: dict, every: int | None = None) -> Path:
    """Train into out/run with the preset's recipe and `settings` (TrainConfig fields); returns the run folder."""
    from model.training import TrainConfig, train

    config = TrainConfig.from_dict(
        {
            "run_dir": str(out / "run"),
            "data_root": str(data_root),
            "preset": preset,
            "seed": seed,
            "workers": 0,
            "keep_checkpoints": 10_000,
            **({"checkpoint_images": every} if every else {}),
            **settings,
        }
    )
    train(config)
    return Path(config.run_dir)


def model_folders(run_dir: Path, out: Path) -> list[tuple[int, Path]]:
    """(images seen, model folder) for the untrained generator and each checkpoint's EMA generator."""
    import torch
    from safetensors.torch import load_file

    from model.checkpoint import list_checkpoints
    from model.config import preset
    from model.generator import Generator
    from model.sampling import write_model_folder
    from model.training import TrainConfig

    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    meta = json.loads(next((run_dir / "data-cache").glob("train-*/meta.json")).read_text())
    model_config, _ = preset(config.preset, **config.model_overrides)
    model_config = model_config.replace(text_dim=int(meta["encoder"]["dim"]))
    encoder = {"name": meta["encoder"]["name"], "max_length": int(meta["encoder"]["max_length"])}
    torch.manual_seed(config.seed)  # the generator training starts from
    points = [(0, Generator(model_config).state_dict())]
    points += [
        (int(c.name.split("-")[1]), load_file(c / "generator_ema.safetensors"))
        for c in list_checkpoints(run_dir / "checkpoints")
    ]
    folders = []
    for images, weights in points:
        generator = Generator(model_config)
        generator.load_state_dict(weights)
        folders.append(
            (images, write_model_folder(out / "models" / f"{images:09d}", generator=generator, text_encoder=encoder))
        )
    return folders


def score(folders: list[tuple[int, Path]], *, data_root: Path, cache_dir: Path, samples: int, show=print) -> list[dict]:
    """The evaluation step's metrics of each (images seen, model folder), one shared caption set and encoder."""
    from components.data_version import data_version
    from components.evaluate.config import EvalConfig
    from components.evaluate.run import evaluate, rprecision_encoder

    config = EvalConfig(num_samples=samples, demo_shapes=True, cache_dir=str(cache_dir))
    version = data_version(data_root / "records" / config.source / config.split)
    encoder = rprecision_encoder(config, data_root=data_root, data_version=version, log=lambda m: None)
    rows = []
    for images, folder in folders:
        summary = evaluate(
            data_root=data_root, out_dir=folder.parent.parent / "eval" / folder.name, data_version=version,
            config=config, model_dir=folder, encoder=encoder, log=lambda m: None,
        )  # fmt: skip
        rows.append({"images_seen": images, **summary["metrics"]})
        show(rows[-1])
    return rows


def format_row(row: dict) -> str:
    return (
        f"| {row['images_seen']:>9,} | {row['caption_accuracy']:.3f} | {row['r_precision']:.3f} ± "
        f"{row['r_precision_std']:.3f} | {row['fid']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-32")
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=20_000)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="TrainConfig field (YAML)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--data-root", type=Path, default=ROOT / "data" / "processed")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "learning-curve")
    parser.add_argument("--score-only", action="store_true", help="score the checkpoints already in --out")
    args = parser.parse_args()

    settings = {**parse_sets(args.set), "total_images": args.images}
    if args.score_only:
        run_dir = args.out / "run"
    else:
        started = time.perf_counter()
        run_dir = train_run(out=args.out, data_root=args.data_root, preset=args.preset, seed=args.seed,
                            settings=settings, every=args.every)  # fmt: skip
        seconds = time.perf_counter() - started
        print(f"trained {args.images} images in {seconds / 60:.1f} min ({args.images / seconds:.1f} images/s)")
    print("| images seen | caption accuracy | R-precision (R@1 of 100) | FID |")
    print("|---:|---:|---:|---:|")
    folders = model_folders(run_dir, args.out)
    show = lambda row: print(format_row(row), flush=True)  # noqa: E731
    rows = score(
        folders, data_root=args.data_root, cache_dir=args.out / "eval-cache", samples=args.eval_samples, show=show
    )
    (args.out / "learning_curve.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
