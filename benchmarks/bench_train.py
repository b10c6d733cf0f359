"""Training throughput of the real training loop for 1 and 2 processes on CPU, and the scaling efficiency.

Each configuration runs `model.training.train` (through torchrun with gloo for 2 processes) on the
processed demo data (`make data`) for `--ticks` ticks at the same global batch, and counts the
real images per second of every tick after the first (the first holds start-up: data arrays,
model build, worker start). Printed, all measured in this run:
  - 1 process, all cores (what a single-process run gets on this machine),
  - 1 process, `--threads-per-process` threads (the per-process baseline),
  - 2 processes, `--threads-per-process` threads each,
  - scaling efficiency = images/s of 2 processes / (2 x images/s of 1 process, same threads each),
  - speed-up of 2 processes over 1 process with all cores.
On a 2-core machine the 2-process run shares the cores the 1-process run had to itself, so the
efficiency shows what the gradient all-reduce and the per-process duplicated work cost.

    python benchmarks/bench_train.py [--data-root data/processed] [--ticks 4] [--tick-images 320]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class TickRecorder:
    """A training Reporter that keeps each tick's images/s (rank 0 only calls it)."""

    def __init__(self) -> None:
        self.images_per_second: list[float] = []

    def on_start(self, **_) -> None:
        pass

    def on_tick(self, *, images_seen: int, stats: dict[str, float]) -> None:
        self.images_per_second.append(stats["images_per_second"])

    def on_samples(self, **_) -> None:
        pass

    def on_end(self, **_) -> None:
        pass


def worker(config_file: Path, result_file: Path, threads: int) -> None:
    """One training process (torchrun sets RANK / WORLD_SIZE for the 2-process case)."""
    import torch
    import torch.distributed as dist

    from model.training import TrainConfig, train

    torch.set_num_threads(threads)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group(backend="gloo")
    recorder = TickRecorder()
    try:
        train(TrainConfig.from_dict(json.loads(config_file.read_text())), reporter=recorder)
    finally:
        if distributed:
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        result_file.write_text(json.dumps(recorder.images_per_second))


def measure(*, processes: int, threads: int, args: argparse.Namespace, scratch: Path) -> float:
    """Median images/s over the ticks after the first, for `processes` x `threads`."""
    from model.training import TrainConfig

    run = scratch / f"p{processes}-t{threads}"
    config = TrainConfig(
        run_dir=str(run),
        data_root=args.data_root,
        preset=args.preset,
        batch_size=args.batch,
        total_images=args.tick_images * args.ticks,
        tick_images=args.tick_images,
        checkpoint_images=10**9,  # only the final checkpoint: the loop is what is timed
        sample_every_ticks=10**9,
        workers=1,
    )
    run.mkdir(parents=True)
    config_file, result_file = run / "bench-config.json", run / "ticks.json"
    config_file.write_text(json.dumps(config.to_dict()))
    worker_args = [__file__, "--worker", str(config_file), str(result_file), str(threads)]
    if processes == 1:
        command = [sys.executable, *worker_args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        command += worker_args
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ticks = json.loads(result_file.read_text())[1:]
    if not ticks:
        raise SystemExit("need at least 2 ticks to measure past start-up; raise --ticks")
    return statistics.median(ticks)


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(ROOT / "data" / "processed"))
    parser.add_argument("--preset", default="cpu-32")
    parser.add_argument("--batch", type=int, default=32, help="global batch (split over the processes)")
    parser.add_argument("--ticks", type=int, default=4)
    parser.add_argument("--tick-images", type=int, default=640)
    parser.add_argument("--threads-per-process", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    args = parser.parse_args()
    if not (Path(args.data_root) / "records").is_dir():
        raise SystemExit(f"no processed data at {args.data_root}: run `make data` first")

    cores = os.cpu_count() or 1
    per = args.threads_per_process
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        all_cores = measure(processes=1, threads=cores, args=args, scratch=scratch)
        one = measure(processes=1, threads=per, args=args, scratch=scratch)
        two = measure(processes=2, threads=per, args=args, scratch=scratch)
    print(f"training {args.preset}, global batch {args.batch}, {cores} cores, median of ticks 2..{args.ticks}")
    print(f"  1 process  x {cores} threads: {all_cores:7.1f} images/s")
    print(f"  1 process  x {per} threads: {one:7.1f} images/s")
    print(f"  2 processes x {per} threads: {two:7.1f} images/s")
    print(f"  scaling efficiency (2 processes / 2 x 1 process, same threads each): {two / (2 * one):.2f}")
    print(f"  speed-up of 2 processes over 1 process with all {cores} cores: {two / all_cores:.2f}x")


if __name__ == "__main__":
    main()
