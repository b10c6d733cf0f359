"""Localized Narratives end to end: `source=ln_coco` trains on the narratives (64 tokens)
and evaluates on LN val, through the whole local pipeline on a tiny configuration."""

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline_support import TINY_RUN

from pipelines.xmcgan_pipeline import run_local

TINY_LN = {
    **TINY_RUN,
    "sources": ["coco", "ln_coco"],
    "source": "ln_coco",
    "ingest": {"image_size": 64},
    "train": {"batch_size": 8, "total_images": 16},
    "evaluate": {**TINY_RUN["evaluate"], "demo_shapes": False},
    "gate": {"max_fid": 10_000.0, "min_rprecision": 0.0},
    "deploy": {"prompts": ["In this image we can see a red circle in the center."]},
}


@pytest.mark.slow
def test_ln_coco_trains_on_narratives_at_64_tokens_and_evaluates_on_ln_val(tmp_path):
    summary = run_local(parameters=TINY_LN, output=tmp_path)
    assert set(summary["ingest"]) == {"coco", "ln_coco"}
    assert summary["validation"]["checks_failed"] == 0
    assert summary["training"]["images_seen"] == 16

    run_dir = next((tmp_path / "runs").iterdir())  # the train step's run folder (checkpoints, config)
    train_config = json.loads((run_dir / "config.json").read_text())
    assert train_config["sources"] == ["ln_coco"] and train_config["max_lengths"]["ln_coco"] == 64
    (arrays,) = (run_dir / "data-cache").glob("train-*")  # what training read: narratives, 64 tokens each
    meta = json.loads((arrays / "meta.json").read_text())
    assert meta["sources"] == ["ln_coco"] and meta["encoder"]["max_length"] == 64
    assert all(caption.startswith("In this image") for caption in meta["captions"])
    assert np.load(arrays / "tokens.npy", mmap_mode="r").shape[1] == 64

    evaluate_dir = Path(summary["evaluation"]["report"]).parent
    evaluation = json.loads((evaluate_dir / "evaluation" / "evaluation.json").read_text())
    model = json.loads((Path(evaluation["model"]["path"]) / "config.json").read_text())
    assert model["text_encoder"]["max_length"] == 64  # the served model encodes prompts at 64 tokens too
    assert (evaluation["source"], evaluation["split"]) == ("ln_coco", "val")
    caption_set = json.loads(Path(evaluation["caption_set"]["path"]).read_text())
    assert caption_set["source"] == "ln_coco" and caption_set["captions"][0].startswith("In this image")
    # the independent R-precision encoder reads narratives whole, not cut to COCO's 17 tokens
    assert evaluation["produced_by"]["rprecision_encoder"]["config"]["max_length"] == 64
    assert summary["gate"]["promote"] is True and summary["deploy"] is not None
