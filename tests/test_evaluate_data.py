"""Evaluation data: reading records, the fixed caption set (seeded, stored, checked against the data).

`write_records` here builds the records Parquet of the data contract from the demo dataset; the
other evaluation tests import it.
"""

import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from components.evaluate.data import CaptionSet, choose_caption_set, read_records, read_split, rows_of
from model.data import RECORD_SCHEMA, records_dir


def write_records(raw: Path, root: Path, *, size: int = 64, shards: int = 2) -> Path:
    """The demo dataset's COCO captions as records/coco/<split>/part-*.parquet (RECORD_SCHEMA, PNG bytes)."""
    for split in ("train", "val"):
        coco = json.loads((raw / "annotations" / f"captions_{split}2017.json").read_text())
        captions = {}
        for annotation in coco["annotations"]:
            captions.setdefault(annotation["image_id"], []).append(annotation["caption"])
        rows = []
        for image in coco["images"]:
            pixels = Image.open(raw / f"{split}2017" / image["file_name"]).convert("RGB").resize((size, size))
            png = io.BytesIO()
            pixels.save(png, format="PNG")
            rows.append(
                {
                    "image_id": str(image["id"]),
                    "source": "coco",
                    "split": split,
                    "file_name": image["file_name"],
                    "image": png.getvalue(),
                    "width": size,
                    "height": size,
                    "original_width": image["width"],
                    "original_height": image["height"],
                    "captions": captions[image["id"]],
                }
            )
        folder = Path(records_dir(root, "coco", split))
        folder.mkdir(parents=True, exist_ok=True)
        for shard in range(shards):  # interleaved shards: readers must not depend on file order
            table = pa.Table.from_pylist(rows[shard::shards], schema=RECORD_SCHEMA)
            pq.write_table(table, folder / f"part-{shard:05d}-of-{shards:05d}.parquet")
    return root


@pytest.fixture(scope="module")
def records_root(demo_root, tmp_path_factory):
    return write_records(demo_root, tmp_path_factory.mktemp("processed"))


def test_records_are_read_sorted_and_decoded(records_root):
    records = read_records(records_root, "coco", "val")
    assert len(records) == 16
    assert records.image_ids == sorted(records.image_ids)
    assert records.images.shape == (16, 64, 64, 3) and records.images.dtype == np.uint8
    assert all(len(c) == 5 for c in records.captions)
    assert read_records(records_root, "coco", "val", image_size=32).images.shape == (16, 32, 32, 3)


def test_missing_split_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"records/coco/val"):
        read_records(tmp_path, "coco", "val")


def test_caption_set_is_seeded_distinct_images_first_and_stored(records_root, tmp_path):
    records = read_records(records_root, "coco", "val")
    choose = lambda size, seed: choose_caption_set(  # noqa: E731
        records, size=size, seed=seed, data_version="v1", source="coco", split="val"
    )
    first, again, other = choose(12, 0), choose(12, 0), choose(12, 1)
    assert first == again and first.id == again.id
    assert first.id != other.id
    assert len(set(first.image_ids)) == 12  # fewer pairs than images: each image once
    larger = choose(40, 0)
    assert len(set(larger.image_ids)) == 16  # every image before any repeats
    assert len(set(zip(larger.image_ids, larger.caption_indices, strict=True))) == 40  # no pair twice
    for image_id, index, caption in zip(first.image_ids, first.caption_indices, first.captions, strict=True):
        assert records.captions[records.image_ids.index(image_id)][index] == caption

    path = tmp_path / "caption_set.json"
    first.save(path)
    assert CaptionSet.load(path) == first
    edited = json.loads(path.read_text())
    edited["captions"][0] = "a purple elephant"
    path.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match="edited"):
        CaptionSet.load(path)


def test_caption_set_larger_than_the_data_is_refused(records_root):
    records = read_records(records_root, "coco", "val")
    with pytest.raises(ValueError, match="exceeds the 80"):
        choose_caption_set(records, size=81, seed=0, data_version="v1", source="coco", split="val")


def test_pairs_map_to_their_records_and_changed_data_is_detected(records_root):
    records = read_records(records_root, "coco", "val")
    caption_set = choose_caption_set(records, size=5, seed=3, data_version="v1", source="coco", split="val")
    rows = rows_of(caption_set, records)
    assert [records.image_ids[r] for r in rows] == list(caption_set.image_ids)
    changed = CaptionSet.from_dict(
        {**caption_set.to_dict(), "captions": ["not this caption", *caption_set.captions[1:]]}
    )
    with pytest.raises(ValueError, match="does not match the records"):
        rows_of(changed, records)


def sorted_records(root: Path, count: int, *, size: int = 64, files: int = 2, rows_per_group: int = 8) -> Path:
    """`count` noise images as records/coco/train, sharded by id and sorted within each file as ingest writes them."""
    rng = np.random.default_rng(count)
    rows = []
    for i in range(count):
        png = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(png, format="PNG")
        rows.append({"image_id": f"{i:06d}", "source": "coco", "split": "train", "file_name": f"{i}.png",
                     "image": png.getvalue(), "width": size, "height": size, "original_width": size,
                     "original_height": size, "captions": [f"caption {i}"]})  # fmt: skip
    folder = Path(records_dir(root, "coco", "train"))
    folder.mkdir(parents=True)
    for f in range(files):
        table = pa.Table.from_pylist(rows[f::files], schema=RECORD_SCHEMA)
        pq.write_table(table, folder / f"part-{f:05d}-of-{files:05d}.parquet", row_group_size=rows_per_group)
    return root


def test_split_images_stream_the_records_in_their_order(records_root):
    decoded = read_records(records_root, "coco", "val")
    split = read_split(records_root, "coco", "val")
    assert split.image_ids == decoded.image_ids and split.captions == decoded.captions
    streamed = list(split.images.batches(5))
    assert [len(b) for b in streamed] == [5, 5, 5, 1]
    assert np.array_equal(np.concatenate(streamed), decoded.images)  # files interleaved: rows come from both
    assert np.array_equal(split.images[[3, 0, 3]], decoded.images[[3, 0, 3]])
    resized = np.concatenate(list(split.images.batches(7, size=32)))
    assert np.array_equal(resized, read_records(records_root, "coco", "val", image_size=32).images)
    assert read_split(records_root, "coco", "val", limit=4).image_ids == decoded.image_ids[:4]


def test_streaming_a_split_holds_a_few_row_groups_not_the_split(tmp_path):
    """The evaluation's real statistics stream the split: peak traced memory at 4N images stays near that at N,
    where decoding the split whole (read_records) grows by every image (64 x 64 x 3 bytes each)."""

    def peak(count: int, whole: bool) -> int:
        root = sorted_records(tmp_path / f"{count}-{whole}", count)
        tracemalloc.start()
        if whole:
            read_records(root, "coco", "train")
        else:
            for _ in read_split(root, "coco", "train").images.batches(16):
                pass
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    image_bytes = 64 * 64 * 3
    assert peak(256, whole=True) - peak(64, whole=True) > 192 * image_bytes  # what would grow
    assert peak(256, whole=False) - peak(64, whole=False) < 192 * image_bytes / 4  # ids and captions only
