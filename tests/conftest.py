"""Shared fixtures. Tests run offline: telemetry off, hubs offline."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
COCO_MINI = SHARED_DATA / "coco-mini"


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    """The small real COCO subset; tests that need it skip in an outside clone without ../shared."""
    if not (COCO_MINI / "annotations" / "captions_train2017.json").is_file():
        pytest.skip(f"COCO-MINI not found at {COCO_MINI} (../shared/data is only present in the project's CI)")
    return COCO_MINI


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A small demo dataset in the published formats, written once per test session."""
    from components.demo_data import DemoDataConfig, write_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(DemoDataConfig(out=root, train_images=48, val_images=16, image_size=64, seed=7))
    return root
