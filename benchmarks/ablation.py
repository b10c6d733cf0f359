"""The XMC-GAN paper's ablation of its contrastive losses (Table 4), on the demo data and budget.

Each row trains the demo preset with its recipe (the same image budget as `make demo`) with some
contrastive terms switched off through `loss_overrides`, for every seed; the final EMA generator
is scored by the evaluation step (caption accuracy, R-precision against the independent dual
encoder, FID on the demo's sample count), and the table gives mean ± spread (half the range) over
seeds. The paper's direction: every contrastive loss helps (COCO FID 39.28 without any, 19.25
sentence only, 14.25 sentence + word, 9.33 with all).

    python benchmarks/ablation.py [--seeds 0 1] [--preset cpu-32] [--out outputs/ablation]
        [--data-root data/processed] [--set total_images=48000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_curve import ROOT, parse_sets, score, train_run

OFF = 0.0
ON = 1.0  # the authors' weight of each term
ROWS = {  # the paper's Table 4 rows asked for: which contrastive terms run (every weight set, whatever the preset's)
    "no contrastive loss": {"sentence_weight": OFF, "word_weight": OFF, "image_weight": OFF, "vgg_weight": OFF},
    "sentence": {"sentence_weight": ON, "word_weight": OFF, "image_weight": OFF, "vgg_weight": OFF},
    "sentence + word": {"sentence_weight": ON, "word_weight": ON, "image_weight": OFF, "vgg_weight": OFF},
    "all four (sentence, word, image on D, image on VGG)": {
        "sentence_weight": ON, "word_weight": ON, "image_weight": ON, "vgg_weight": ON,
    },
}  # fmt: skip
METRICS = ("caption_accuracy", "r_precision", "fid")


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3g} ± {(max(values) - min(values)) / 2:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="TrainConfig field (YAML)")
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--data-root", type=Path, default=ROOT / "data" / "processed")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "ablation")
    args = parser.parse_args()

    settings = parse_sets(args.set)
    results = {}
    for row, switched_off in ROWS.items():
        for seed in args.seeds:
            out = args.out / row.split(" (")[0].replace(" ", "-").replace("+", "and") / f"seed-{seed}"
            started = time.perf_counter()
            run_dir = train_run(
                out=out, data_root=args.data_root, preset=args.preset, seed=seed,
                settings={**settings, "loss_overrides": {**settings.get("loss_overrides", {}), **switched_off}},
            )  # fmt: skip
            minutes = (time.perf_counter() - started) / 60
            (scores,) = score([(seed, run_dir / "model")], data_root=args.data_root, cache_dir=args.out / "eval-cache",
                              samples=args.eval_samples, show=lambda r: None)  # fmt: skip
            results.setdefault(row, []).append(scores)
            figures = ", ".join(f"{m} {scores[m]:.4g}" for m in METRICS)
            print(f"{row}, seed {seed}: {figures} ({minutes:.1f} min)", flush=True)
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2))
    print(
        f"\n| contrastive losses | caption accuracy | R-precision | FID |  (mean ± half range over seeds {args.seeds})"
    )
    print("|---|---:|---:|---:|")
    for row, runs in results.items():
        print(f"| {row} | " + " | ".join(spread([r[m] for r in runs]) for m in METRICS) + " |")


if __name__ == "__main__":
    main()
