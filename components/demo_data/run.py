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
from dataclasses import asdict
from pathlib import Path

from .config import DemoDataConfig
from .scenes import Scene, captions, narrative, render, sample_scene, shape_box

SPLITS = ("train", "val")
VAL_ID_OFFSET = 1_000_000  # image ids are unique across splits, as in COCO
LICENSE = {
    "id": 1,
    "name": "CC0 1.0 (procedurally generated)",
    "url": "https://creativecommons.org/publicdomain/zero/1.0/",
}


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
