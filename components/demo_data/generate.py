"""Write the demo dataset in the published formats: COCO captions JSON and Localized Narratives.

Layout (the same as a COCO 2017 download, so ingest reads demo and real data alike):

    <out>/annotations/captions_{train,val}2017.json
    <out>/annotations/coco_{train,val}_localized_narratives.jsonl
    <out>/{train,val}2017/<12-digit image id>.jpg
    <out>/annotations/scenes_{train,val}2017.jsonl   # the drawn scene per image, for checks

Deterministic for a seed: every image draws from its own RNG seeded by (seed, split, index).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from model.settings import DictConfig, setting

from .scenes import Scene, captions, narrative, render, sample_scene, shape_box

SPLITS = ("train", "val")
VAL_ID_OFFSET = 1_000_000  # image ids are unique across splits, as in COCO
LICENSE = {
    "id": 1,
    "name": "CC0 1.0 (procedurally generated)",
    "url": "https://creativecommons.org/publicdomain/zero/1.0/",
}


@dataclass(frozen=True)
class DemoDataConfig(DictConfig):
    out: Path = setting(help="folder to write (COCO 2017 layout: annotations/, train2017/, val2017/)")
    train_images: int = setting(2000, help="number of training images")
    val_images: int = setting(200, help="number of validation images")
    image_size: int = setting(128, help="side of the square images in pixels (16-1024)")
    captions_per_image: int = setting(5, help="COCO-style paraphrases per image (1-10)")
    two_shape_fraction: float = setting(0.3, help="fraction of images with two shapes and relational captions (0-1)")
    jpeg_quality: int = setting(95, help="JPEG quality of the written images (1-100)")
    seed: int = setting(0, help="random seed; the same seed and options give byte-identical files")

    def __post_init__(self) -> None:
        problems = []
        if self.train_images < 1 or self.val_images < 1:
            problems.append("train_images and val_images must be at least 1")
        if not 16 <= self.image_size <= 1024:
            problems.append(f"image_size must be in [16, 1024], got {self.image_size}")
        if not 1 <= self.captions_per_image <= 10:
            problems.append(f"captions_per_image must be in [1, 10], got {self.captions_per_image}")
        if not 0.0 <= self.two_shape_fraction <= 1.0:
            problems.append(f"two_shape_fraction must be in [0, 1], got {self.two_shape_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if problems:
            raise ValueError("invalid demo data config: " + "; ".join(problems))

    def count(self, split: str) -> int:
        return self.train_images if split == "train" else self.val_images


def image_id(split: str, index: int) -> int:
    return index + 1 + (VAL_ID_OFFSET if split == "val" else 0)


def _scenes(config: DemoDataConfig, split: str) -> Iterator[tuple[int, random.Random, Scene]]:
    for index in range(config.count(split)):
        rng = random.Random(f"{config.seed}/{split}/{index}")
        yield image_id(split, index), rng, sample_scene(rng, two_shape_fraction=config.two_shape_fraction)


def _timed_caption(text: str) -> list[dict]:
    """Utterances of up to three words, a quarter second a word, as LN's speech alignment gives."""
    words, clock, timed = text.split(), 0.0, []
    for start in range(0, len(words), 3):
        chunk = words[start : start + 3]
        timed.append(
            {
                "utterance": " ".join(chunk),
                "start_time": round(clock, 3),
                "end_time": round(clock + 0.25 * len(chunk), 3),
            }
        )
        clock += 0.25 * len(chunk)
    return timed


def _traces(scene: Scene, size: int) -> list[list[dict]]:
    """One mouse trace per shape: the outline of its box, normalised to [0, 1], as the narrator points."""
    traces, clock = [], 0.0
    for shape in scene.shapes:
        x0, y0, x1, y1 = (v / size for v in shape_box(shape, size))
        corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        traces.append(
            [{"x": round(x, 4), "y": round(y, 4), "t": round(clock + 0.1 * k, 3)} for k, (x, y) in enumerate(corners)]
        )
        clock += 1.0
    return traces


def write_demo_dataset(config: DemoDataConfig, *, progress=None) -> dict:
    """Write both splits; returns a summary with counts and paths. `progress(n)` is called per image."""
    root = Path(config.out)
    annotations = root / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    summary = {
        "root": str(root),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        "splits": {},
    }
    for split in SPLITS:
        image_dir = root / f"{split}2017"
        image_dir.mkdir(exist_ok=True)
        images, caption_records, narratives, scenes = [], [], [], []
        for iid, rng, scene in _scenes(config, split):
            file_name = f"{iid:012d}.jpg"
            render(scene, config.image_size).save(image_dir / file_name, quality=config.jpeg_quality)
            images.append(
                {
                    "id": iid,
                    "file_name": file_name,
                    "width": config.image_size,
                    "height": config.image_size,
                    "license": LICENSE["id"],
                    "date_captured": "2026-01-01 00:00:00",
                    "coco_url": "",
                    "flickr_url": "",
                }
            )
            for caption in captions(scene, rng, config.captions_per_image):
                caption_records.append(
                    {
                        "id": len(caption_records) + 1 + (VAL_ID_OFFSET * 10 if split == "val" else 0),
                        "image_id": iid,
                        "caption": caption,
                    }
                )
            text = narrative(scene)
            annotator = rng.randint(1, 150)
            narratives.append(
                {
                    "dataset_id": f"mscoco_{split}2017",
                    "image_id": str(iid),
                    "annotator_id": annotator,
                    "caption": text,
                    "timed_caption": _timed_caption(text),
                    "traces": _traces(scene, config.image_size),
                    "voice_recording": f"coco_{split}/coco_{split}_{iid}_{annotator}.ogg",
                }
            )
            scenes.append(
                {"image_id": iid, "background": scene.background, "shapes": [asdict(s) for s in scene.shapes]}
            )
            if progress:
                progress(1)
        coco = {
            "info": {
                "description": "XMC-GAN demo shapes dataset",
                "version": "1.0",
                "year": 2026,
                "contributor": "xmcgan components.demo_data",
                "date_created": "2026-01-01",
            },
            "licenses": [LICENSE],
            "images": images,
            "annotations": caption_records,
        }
        (annotations / f"captions_{split}2017.json").write_text(json.dumps(coco))
        (annotations / f"coco_{split}_localized_narratives.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in narratives)
        )
        (annotations / f"scenes_{split}2017.jsonl").write_text("".join(json.dumps(r) + "\n" for r in scenes))
        summary["splits"][split] = {
            "images": len(images),
            "captions": len(caption_records),
            "narratives": len(narratives),
        }
    return summary
