"""Start a training run: in this process, or N processes through torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components import atomic
from components.data_version import data_version
from components.lineage import code_version
from model.training import TrainConfig


def embedded_encoder(data_root: str | Path, source: str, max_length: int) -> str:
    """The text encoder (hub name or path, as encoder.json records it) whose embeddings of `source`
    at `max_length` tokens the processed data holds: the embed step's, so training needs no second
    copy of that setting. Refuses when none or several are there (then name one explicitly)."""
    found = sorted(
        {
            json.loads(marker.read_text())["name"]
            for marker in Path(data_root, "embeddings").glob(f"*-L{max_length}/encoder.json")
            if (marker.parent / source).is_dir()
        }
    )
    if len(found) != 1:
        raise ValueError(
            f"{data_root} holds embeddings of {source!r} at {max_length} tokens by "
            f"{'no encoder' if not found else 'several encoders ' + str(found)}: name the encoder to train with"
        )
    return found[0]


def run_training(
    *,
    config: TrainConfig,
    nproc_per_node: int = 1,
    tracking_uri: str | None = None,
    experiment: str = "xmcgan",
    run_name: str | None = None,
) -> dict:
    """Train to completion (resuming from the run folder's checkpoints); returns the summary with the
    MLflow run id. Lineage (data and code version) is added to the model's provenance."""
    provenance = {"data_version": data_version(config.data_root), "code_version": code_version(), **config.provenance}
    config = TrainConfig.from_dict({**config.to_dict(), "provenance": provenance})
    tracking = None
    if tracking_uri:
        tracking = {
            "tracking_uri": tracking_uri,
            "experiment": experiment,
            "run_name": run_name,
            "tags": {"data_version": provenance["data_version"], "code_version": provenance["code_version"]},
        }
    launch = {"config": config.to_dict(), "tracking": tracking}
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic.unpublish(run_dir / "summary.json")  # a run's summary says it finished: none until this one has
    # The Kubeflow training operator sets PET_NNODES, PET_NODE_RANK and PET_MASTER_ADDR/PORT on
    # each pod of a multi-node job; torchrun reads them, so one command serves one node or many.
    multi_node = int(os.environ.get("PET_NNODES", "1")) > 1
    if nproc_per_node == 1 and not multi_node:
        from .worker import run_worker

        return run_worker(launch)
    launch_file = run_dir / "launch.json"
    atomic.write_text(launch_file, json.dumps(launch, indent=2))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *([] if multi_node else ["--standalone"]),
        f"--nproc-per-node={nproc_per_node}",
        "-m",
        "components.train.worker",
        str(launch_file),
    ]
    subprocess.run(command, check=True)
    return json.loads((run_dir / "summary.json").read_text())
