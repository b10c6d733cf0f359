"""One training process: `torchrun --nproc-per-node N -m components.train.worker <run_dir>/launch.json`.

torchrun (or the Kubeflow training operator, through the same command) sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address; a plain `python -m` start is a single process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from components import atomic
from model.training import TrainConfig, train

from .tracking import MLflowReporter


def run_worker(launch: dict) -> dict:
    """Train with `launch` = {"config": TrainConfig dict, "tracking": {...} or None}; rank 0 returns the summary."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        else:  # share the cores between the processes of this node instead of oversubscribing them
            local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    rank = dist.get_rank() if distributed else 0
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )

    config = TrainConfig.from_dict(launch["config"])
    reporter = None
    if rank == 0 and launch.get("tracking"):
        reporter = MLflowReporter(**launch["tracking"])
        config = TrainConfig.from_dict(
            {**config.to_dict(), "provenance": {**config.provenance, "training_run_id": reporter.run_id}}
        )
    try:
        summary = train(config, reporter=reporter)
    except BaseException:
        if reporter:
            reporter.close(failed=True)
        raise
    finally:
        if distributed:
            dist.destroy_process_group()
    if reporter:
        summary["run_id"] = reporter.run_id
        reporter.close()
    if rank == 0:
        atomic.write_text(Path(config.run_dir) / "summary.json", json.dumps(summary, indent=2))  # written last
    return summary


if __name__ == "__main__":
    run_worker(json.loads(Path(sys.argv[1]).read_text()))
