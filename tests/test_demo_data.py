"""The demo dataset: published formats, captions that match the pixels, determinism, splits."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.demo_data import DemoDataConfig, caption_accuracy, caption_facts, write_demo_dataset
from components.demo_data.scenes import COLOURS, Scene, Shape, render

COCO_KEYS = {"info", "licenses", "images", "annotations"}
LN_KEYS = {"dataset_id", "image_id", "annotator_id", "caption", "timed_caption", "traces", "voice_recording"}


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_coco_captions_follow_the_published_schema(demo_root):
    for split, count in (("train", 48), ("val", 16)):
        coco = json.loads((demo_root / "annotations" / f"captions_{split}2017.json").read_text())
        assert set(coco) == COCO_KEYS
        assert len(coco["images"]) == count
        ids = {image["id"] for image in coco["images"]}
        for image in coco["images"]:
            assert {"id", "file_name", "width", "height", "license"} <= set(image)
            assert Image.open(demo_root / f"{split}2017" / image["file_name"]).size == (image["width"], image["height"])
        annotation_ids = [a["id"] for a in coco["annotations"]]
        assert len(set(annotation_ids)) == len(annotation_ids) == 5 * count
        assert all(a["image_id"] in ids and isinstance(a["caption"], str) and a["caption"] for a in coco["annotations"])


def test_localized_narratives_follow_the_published_schema(demo_root):
    coco_ids = {
        i["id"] for i in json.loads((demo_root / "annotations" / "captions_train2017.json").read_text())["images"]
    }
    lines = (demo_root / "annotations" / "coco_train_localized_narratives.jsonl").read_text().splitlines()
    assert len(lines) == 48
    for line in lines:
        record = json.loads(line)
        assert set(record) == LN_KEYS
        assert isinstance(record["image_id"], str) and int(record["image_id"]) in coco_ids
        assert isinstance(record["annotator_id"], int)
        assert record["dataset_id"] == "mscoco_train2017"
        assert len(record["caption"].split()) > 10  # a narrative, longer than a COCO caption
        words = [w for u in record["timed_caption"] for w in u["utterance"].split()]
        assert words == record["caption"].split()
        assert all(u["start_time"] < u["end_time"] for u in record["timed_caption"])
        for trace in record["traces"]:
            assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 and set(p) == {"x", "y", "t"} for p in trace)


def test_every_caption_is_true_of_its_image(demo_root):
    coco = json.loads((demo_root / "annotations" / "captions_val2017.json").read_text())
    files = {i["id"]: i["file_name"] for i in coco["images"]}
    for annotation in coco["annotations"]:
        image = Image.open(demo_root / "val2017" / files[annotation["image_id"]])
        assert caption_facts(annotation["caption"]), annotation["caption"]
        assert caption_accuracy(image, annotation["caption"]) == 1.0, annotation["caption"]


def test_named_colour_is_drawn_at_the_named_place():
    scene = Scene(background="white", shapes=(Shape(kind="square", colour="red", size="large", cell=(0, 0)),))
    pixels = np.asarray(render(scene, 90)).astype(int)
    top_left, bottom_right = pixels[:30, :30].reshape(-1, 3), pixels[60:, 60:].reshape(-1, 3)
    red = np.asarray(COLOURS["red"])
    assert (np.abs(top_left - red).sum(1) < 30).mean() > 0.5
    assert (np.abs(bottom_right - red).sum(1) < 30).mean() == 0
    assert caption_accuracy(render(scene, 90), "a red square in the top left corner") == 1.0
    assert caption_accuracy(render(scene, 90), "a red square in the bottom right corner") == 0.5  # present, wrong place
    assert caption_accuracy(render(scene, 90), "a blue square on a black background") == 0.0


def test_the_check_rejects_noise_and_mismatched_captions(demo_root):
    rng = np.random.default_rng(0)
    coco = json.loads((demo_root / "annotations" / "captions_val2017.json").read_text())
    captions = [a["caption"] for a in coco["annotations"]]
    noise = [caption_accuracy(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), c) for c in captions]
    assert np.nanmean(noise) < 0.1


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    def build(name, seed):
        write_demo_dataset(DemoDataConfig(out=tmp_path / name, train_images=6, val_images=3, image_size=32, seed=seed))
        return _tree_digest(tmp_path / name)

    assert build("a", 1) == build("b", 1)
    assert build("a2", 2) != build("b2", 1)


def test_bad_options_get_a_clear_error():
    with pytest.raises(ValueError, match="image_size must be in"):
        DemoDataConfig(out=Path("x"), image_size=4)
    result = subprocess.run(
        [sys.executable, "-m", "components.demo_data", "--out", "x", "--two-shape-fraction", "2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "two_shape_fraction must be in [0, 1]" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "components.demo_data", "--out", "x", "--train-images", "many"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "invalid int value" in result.stderr


def test_cli_documents_every_option():
    result = subprocess.run([sys.executable, "-m", "components.demo_data", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for flag in (
        "--out",
        "--train-images",
        "--val-images",
        "--image-size",
        "--captions-per-image",
        "--two-shape-fraction",
        "--jpeg-quality",
        "--seed",
    ):
        assert flag in result.stdout
