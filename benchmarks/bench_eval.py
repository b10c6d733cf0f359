"""Evaluation throughput against a bare forward of the TF-Inception TorchScript module, measured in one run.

    python benchmarks/bench_eval.py [--images 48] [--batch 16] [--rounds 3] [--end-to-end-samples 96]
        [--fid-features 20000]

1. FID features: uint8 images at the generator's size through the evaluation's path (torch-fidelity's
   extraction loop, TF 1.x bilinear resize to 299, the registered extractor) against the module's own
   forward on tensors already at 299x299 in [-1, 1]. Rounds alternate between the two; medians.
2. End to end: `evaluate()` on demo records with warm caches (real features, dual encoder), generated
   images per second of the whole step (generation, features, FID/KID, R-precision, report) against
   the same bare forward. Fixed costs (the Fréchet distance's matrix square root, loading the encoders)
   weigh more at small sample counts.
3. FID's memory (`--fid-features N`, 0 skips): FID of 200 generated against N real 2,048-d features,
   `FeatureStatistics` (the covariance accumulated a chunk of rows at a time) against the baseline of
   a QR on a float64 copy of the centred features (what FID did before), each in a fresh process:
   peak memory growth (ru_maxrss) and seconds, and that both give the same FID.

Target: at least 0.8x the bare forward. Figures on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.evaluate.fidelity import create_extractor, default_tf_inception_path, extract_features  # noqa: E402


def images_per_second(run, count: int) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def bare_forward(net, count: int, batch: int):
    inputs = torch.rand(count, 3, 299, 299) * 2 - 1

    def run():
        with torch.no_grad():
            for start in range(0, count, batch):
                net(inputs[start : start + batch])

    return run


def demo_records(root: Path, *, train: int, val: int, size: int) -> Path:
    """The demo dataset through the real ingest step (Beam, DirectRunner) into records Parquet."""
    from components.demo_data import DemoDataConfig, write_demo_dataset
    from components.ingest import IngestConfig, run_ingest

    write_demo_dataset(DemoDataConfig(out=root / "raw", train_images=train, val_images=val, image_size=size))
    run_ingest(
        config=IngestConfig(
            input_root=str(root / "raw"), output_root=str(root / "processed"), sources=("coco",), image_size=size
        )
    )
    return root / "processed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="images per feature measurement")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="generated image side")
    parser.add_argument("--end-to-end-samples", type=int, default=96, help="0 skips the end-to-end measurement")
    parser.add_argument("--fid-features", type=int, default=20_000, help="real features of the FID memory test")
    parser.add_argument("--fid-child", choices=("baseline", "statistics"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fid_child:
        print(json.dumps(fid_memory_child(args.fid_child, args.fid_features)))
        return
    torch.manual_seed(0)
    print(f"torch threads: {torch.get_num_threads()}")

    net = torch.jit.load(str(default_tf_inception_path()), map_location="cpu").eval()
    extractor = create_extractor()
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    bare_forward(net, args.batch, args.batch)()  # warm-up: first TorchScript calls optimise the graph
    extract_features(images[: args.batch], extractor, batch_size=args.batch)
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(images_per_second(bare_forward(net, args.images, args.batch), args.images))
        ours.append(images_per_second(lambda: extract_features(images, extractor, batch_size=args.batch), args.images))
    bare_rate, our_rate = statistics.median(bare), statistics.median(ours)
    print(f"bare TF-Inception forward at 299x299: {bare_rate:6.2f} images/s (rounds {[round(b, 2) for b in bare]})")
    print(
        f"evaluation FID features ({args.size}px -> 299, torch-fidelity loop): {our_rate:6.2f} images/s  "
        f"(rounds {[round(o, 2) for o in ours]})"
    )
    print(f"ratio: {our_rate / bare_rate:.2f}x the bare forward (target >= 0.8x)")

    if args.end_to_end_samples:
        end_to_end(args, bare_rate)
    if args.fid_features:
        fid_memory(args.fid_features)


def fid_memory_child(mode: str, real_rows: int) -> dict:
    """FID of 200 generated against `real_rows` real features in this process: peak RSS growth, seconds."""
    from components.evaluate.fidelity import FeatureStatistics, frechet_distance

    rng = torch.Generator().manual_seed(0)
    real, generated = torch.randn(real_rows, 2048, generator=rng).abs(), torch.randn(200, 2048, generator=rng).abs()
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    if mode == "baseline":  # QR of the centred features in float64: a float64 copy of each set and its centring

        def factor(features):
            centred = (features - features.mean(0)) / math.sqrt(len(features) - 1)
            return torch.linalg.qr(centred, mode="r").R if len(features) > features.shape[1] else centred

        g, r = generated.double(), real.double()
        a_g, a_r = factor(g), factor(r)
        trace = a_g.square().sum() + a_r.square().sum() - 2 * torch.linalg.svdvals(a_g @ a_r.T).sum()
        fid = float((g.mean(0) - r.mean(0)).square().sum() + trace)
    else:
        fid = frechet_distance(FeatureStatistics.of(generated), FeatureStatistics.of(real))
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    return {"fid": fid, "seconds": time.perf_counter() - started, "peak_growth_mib": grown}


def fid_memory(real_rows: int) -> None:
    results = {}
    for mode in ("baseline", "statistics"):
        command = [sys.executable, __file__, "--fid-child", mode, "--fid-features", str(real_rows)]
        results[mode] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    features_mib = real_rows * 2048 * 4 / 2**20
    print(f"FID of 200 against {real_rows:,} real features ({features_mib:.0f} MiB of float32):")
    for mode, r in results.items():
        grown, seconds = r["peak_growth_mib"], r["seconds"]
        print(f"  {mode:10s}: peak memory growth {grown:6.0f} MiB, {seconds:5.1f} s, FID {r['fid']:.6f}")
    base, ours = results["baseline"], results["statistics"]
    same = math.isclose(ours["fid"], base["fid"], rel_tol=1e-9)
    memory, seconds = ours["peak_growth_mib"] / base["peak_growth_mib"], ours["seconds"] / base["seconds"]
    print(f"ratio: {memory:.2f}x the baseline's memory, {seconds:.2f}x its time; the same FID: {same}")


def end_to_end(args, bare_rate: float) -> None:
    from components.evaluate import EvalConfig, evaluate, read_records

    samples = args.end_to_end_samples
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as folder:
        root = demo_records(Path(folder), train=200, val=samples, size=args.size)
        records = read_records(root, "coco", "val")
        image_of = {c: im for im, captions in zip(records.images, records.captions, strict=True) for c in captions}

        def generate(captions, seed):
            return np.stack([image_of[c] for c in captions])

        config = EvalConfig(
            num_samples=samples,
            rprecision_candidates=min(100, 4 * samples // 5),
            cache_dir=str(Path(folder) / "cache"),
            dual_encoder={"steps": 200},
            demo_shapes=True,
        )
        kwargs = dict(data_root=root, data_version="bench", config=config, generate=generate, log=lambda m: None)
        evaluate(out_dir=Path(folder) / "warm", **kwargs)  # fills the caches: real features, dual encoder
        started = time.perf_counter()
        summary = evaluate(out_dir=Path(folder) / "timed", **kwargs)
        rate = samples / (time.perf_counter() - started)
    print(f"end-to-end evaluate(), {samples} generated images, warm caches: {rate:6.2f} images/s")
    print(f"  stages (s): {summary['timings']}")
    print(f"ratio: {rate / bare_rate:.2f}x the bare forward")


if __name__ == "__main__":
    main()
