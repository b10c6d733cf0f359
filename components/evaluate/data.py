"""The evaluation data: image records of a split, and the fixed caption set every model is scored on.

The caption set is a seeded choice of (image, caption) pairs from the evaluation split, stored as
JSON with the report; its id is a hash of its content, so two evaluations on the same set say so.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from model.data import RECORD_SCHEMA, records_dir


class SplitImages:
    """The images of a split's records in the records' order, read and decoded on demand.

    `batches` streams them a few at a time: a record file's row group (ingest's unit of 128 PNGs) is read
    once, when its first row comes up, and dropped after its last, so what is held is the row groups still
    being taken from (one a file when the files are sorted, as ingest writes them) and one batch decoded,
    never the split. Indexing (`images[rows]`) decodes just those rows.
    """

    def __init__(self, files: list[Path], locations: list[tuple[int, int, int]]):
        self.files = files
        self.locations = locations  # per row: (file, row group, row within the group)
        self._parquet: dict[int, pq.ParquetFile] = {}

    def __len__(self) -> int:
        return len(self.locations)

    def _group(self, file: int, group: int) -> list[bytes]:
        if file not in self._parquet:
            self._parquet[file] = pq.ParquetFile(self.files[file])
        return self._parquet[file].read_row_group(group, columns=["image"]).column("image").to_pylist()

    def _decoded(self, locations, size: int | None, groups: dict) -> np.ndarray:
        pngs = []
        for file, group, row in locations:
            if (file, group) not in groups:
                groups[(file, group)] = self._group(file, group)
            pngs.append(groups[(file, group)][row])
        return np.stack([decode_png(png, size=size) for png in pngs])

    def batches(self, batch: int, *, size: int | None = None):
        """uint8 (<= batch, h, w, 3) arrays: the split's rows in order (resized to size x size when given)."""
        last_use = {(file, group): i for i, (file, group, _) in enumerate(self.locations)}
        groups: dict[tuple[int, int], list[bytes]] = {}
        for start in range(0, len(self), batch):
            chunk = self.locations[start : start + batch]
            images = self._decoded(chunk, size, groups)
            for key in [key for key in groups if last_use[key] < start + len(chunk)]:
                del groups[key]  # no row of it still to come
            yield images

    def take(self, rows, *, size: int | None = None) -> np.ndarray:
        """The images of `rows` (indices into the split), decoded, in that order."""
        return self._decoded([self.locations[i] for i in np.asarray(rows).tolist()], size, {})

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            rows = range(*rows.indices(len(self)))
        return self.take(list(rows))

    def decode_all(self, *, size: int | None = None) -> np.ndarray:
        if not len(self):
            raise ValueError("no images to decode")
        return np.concatenate(list(self.batches(1024, size=size)))


@dataclass(frozen=True)
class Records:
    """The images of one split: ids (n,), captions (n lists), images uint8 (n, h, w, 3), decoded
    (`read_records`) or read on demand (`read_split`: a SplitImages)."""

    image_ids: list[str]
    captions: list[list[str]]
    images: np.ndarray | SplitImages

    def __len__(self) -> int:
        return len(self.image_ids)


def decode_png(data: bytes, *, size: int | None = None) -> np.ndarray:
    """PNG bytes -> uint8 (h, w, 3), resized bilinearly to size x size when given and different."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def record_files(data_root: str | Path, source: str, split: str) -> list[Path]:
    """The part-*.parquet files of records/<source>/<split>, in file-name order."""
    folder = Path(records_dir(data_root, source, split))
    files = sorted(folder.glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no record files (part-*.parquet) in {folder}")
    return files


def read_table(data_root: str | Path, source: str, split: str, *, columns: list[str]) -> pa.Table:
    """All part-*.parquet files of records/<source>/<split>, in file-name order."""
    files = record_files(data_root, source, split)
    missing = set(columns) - set(RECORD_SCHEMA.names)
    if missing:
        raise ValueError(f"unknown record columns {sorted(missing)}; the schema has {RECORD_SCHEMA.names}")
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def read_split(data_root: str | Path, source: str, split: str, *, limit: int | None = None) -> Records:
    """The records of a split sorted by image id (a stable order whatever the sharding), their images not
    read: a SplitImages streams or takes them. Reads the ids and captions, one row group at a time."""
    files = record_files(data_root, source, split)
    rows = []
    for f, path in enumerate(files):
        parquet = pq.ParquetFile(path)
        for g in range(parquet.num_row_groups):
            group = parquet.read_row_group(g, columns=["image_id", "captions"])
            ids, captions = group.column("image_id").to_pylist(), group.column("captions").to_pylist()
            rows += [
                (image_id, caption_list, f, g, i)
                for i, (image_id, caption_list) in enumerate(zip(ids, captions, strict=True))
            ]
    rows.sort()
    rows = rows[:limit] if limit is not None else rows
    empty = [image_id for image_id, captions, *_ in rows if not captions]
    if empty:
        raise ValueError(f"records without captions in {source}/{split}: image ids {empty[:5]}")
    images = SplitImages(files, [(f, g, i) for *_, f, g, i in rows])
    return Records(image_ids=[r[0] for r in rows], captions=[list(r[1]) for r in rows], images=images)


def read_records(
    data_root: str | Path, source: str, split: str, *, image_size: int | None = None, limit: int | None = None
) -> Records:
    """Decoded records of a split, sorted by image id (a stable order whatever the sharding)."""
    records = read_split(data_root, source, split, limit=limit)
    return Records(records.image_ids, records.captions, records.images.decode_all(size=image_size))


@dataclass(frozen=True)
class CaptionSet:
    """Fixed (image, caption) pairs: pair i is records[image_ids[i]].captions[caption_indices[i]]."""

    data_version: str
    source: str
    split: str
    seed: int
    image_ids: tuple[str, ...]
    caption_indices: tuple[int, ...]
    captions: tuple[str, ...]

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.captions)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> CaptionSet:
        lists = ("image_ids", "caption_indices", "captions")
        return cls(**{k: tuple(v) if k in lists else v for k, v in data.items() if k != "id"})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"id": self.id, **self.to_dict()}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> CaptionSet:
        data = json.loads(Path(path).read_text())
        caption_set = cls.from_dict(data)
        if data.get("id") not in (None, caption_set.id):
            raise ValueError(f"caption set {path} was edited: its id {data['id']} does not match its content")
        return caption_set


def choose_caption_set(records: Records, *, size: int, seed: int, data_version: str, source: str, split: str):
    """A seeded choice of `size` (image, caption) pairs, distinct images first.

    Images are shuffled and each taken once with one random caption; when `size` exceeds the
    number of images, further rounds take further captions of the same images.
    """
    if size < 1:
        raise ValueError(f"caption set size must be at least 1, got {size}")
    available = sum(len(c) for c in records.captions)
    if size > available:
        raise ValueError(f"caption set size {size} exceeds the {available} (image, caption) pairs of {source}/{split}")
    rng = random.Random(f"caption-set/{seed}")
    order = list(range(len(records)))
    rng.shuffle(order)
    caption_orders = {i: rng.sample(range(len(records.captions[i])), len(records.captions[i])) for i in order}
    pairs = []
    for round_ in range(max(map(len, records.captions))):
        pairs += [(i, caption_orders[i][round_]) for i in order if round_ < len(caption_orders[i])]
    pairs = pairs[:size]
    return CaptionSet(
        data_version=data_version,
        source=source,
        split=split,
        seed=seed,
        image_ids=tuple(records.image_ids[i] for i, _ in pairs),
        caption_indices=tuple(c for _, c in pairs),
        captions=tuple(records.captions[i][c] for i, c in pairs),
    )


def rows_of(caption_set: CaptionSet, records: Records) -> list[int]:
    """The record row of each pair of the set, checking that the records still hold the same captions."""
    index = {image_id: i for i, image_id in enumerate(records.image_ids)}
    rows = []
    for image_id, caption_index, caption in zip(
        caption_set.image_ids, caption_set.caption_indices, caption_set.captions, strict=True
    ):
        row = index.get(image_id)
        known = row is not None and caption_index < len(records.captions[row])
        if not known or records.captions[row][caption_index] != caption:
            raise ValueError(
                f"caption set {caption_set.id} does not match the records: image {image_id} caption {caption_index}"
            )
        rows.append(row)
    return rows
