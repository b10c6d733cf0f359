"""Training data: the ingested Parquet tables turned once into memory-mapped arrays, read by position.

Why arrays: every process of a run reads any image (the order is a global permutation), so the
data must be shared, not copied per process. Decoded pixels and caption embeddings are written
once to .npy files and memory-mapped; the page cache holds one copy for all ranks and workers.

Why positions: the sample at global position p (which image, which of its captions, flipped or
not) is a pure function of (seed, p). A run that resumes at position p therefore sees exactly the
samples an uninterrupted run would have seen, and ranks split each global batch without talking.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import embeddings_dir, embeddings_root, records_dir

ARRAY_FILES = ("images.npy", "caption_offsets.npy", "tokens.npy", "masks.npy", "sentences.npy")
EMBEDDING_COLUMNS = ["caption", "token_embeddings", "attention_mask", "sentence_embedding"]


@dataclass(frozen=True)
class TrainingArrays:
    """Images (n, H, W, 3) uint8; captions of image i are rows caption_offsets[i]:caption_offsets[i+1]
    of tokens (c, L, D) float16, masks (c, L) bool and sentences (c, D) float32."""

    images: np.ndarray
    caption_offsets: np.ndarray
    tokens: np.ndarray
    masks: np.ndarray
    sentences: np.ndarray
    captions: list[str]
    encoder: dict

    @classmethod
    def load(cls, folder: str | Path) -> TrainingArrays:
        folder = Path(folder)
        arrays = {name[:-4]: np.load(folder / name, mmap_mode="r") for name in ARRAY_FILES}
        meta = json.loads((folder / "meta.json").read_text())
        return cls(**arrays, captions=meta["captions"], encoder=meta["encoder"])

    def __len__(self) -> int:
        return len(self.images)


def _cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _parquet_fingerprint(folder: str) -> list:
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(folder).glob("*.parquet"))]


def record_image_size(data_root: str | Path, source: str, split: str) -> tuple[int, int]:
    """(width, height) of the ingested records of `source`/`split`, read from their first image
    (ingest writes every record of a run at its one image_size)."""
    import pyarrow.parquet as pq

    files = sorted(Path(records_dir(data_root, source, split)).glob("*.parquet"))
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            images = parquet.read_row_group(group, columns=["image"])["image"]
            if len(images):
                return Image.open(io.BytesIO(images[0].as_py())).size
    raise ValueError(f"no records in {records_dir(data_root, source, split)}: run the ingest step first")


def check_record_size(
    *, data_root: str | Path, sources: tuple[str, ...], split: str, image_size: int, model: str, upsample: bool = False
) -> None:
    """Refuse records smaller than the model: a generator trained on upsampled pixels is a smaller
    model's images drawn large, not the size it claims. Larger records are resized down (bilinear,
    the authors' resize); `upsample` lets a smoke test train on small records anyway."""
    for source in sources:
        width, height = record_image_size(data_root, source, split)
        if (width < image_size or height < image_size) and not upsample:
            raise ValueError(
                f"{model} trains at {image_size}x{image_size} px but the ingested records of {source}/{split} are "
                f"{width}x{height} px: records are not upsampled. Ingest at {image_size} px (ingest image_size, "
                f"or --set image_size={image_size} in the pipeline) or choose a preset of {width} px"
            )


def prepare_arrays(
    *,
    data_root: str | Path,
    sources: tuple[str, ...],
    split: str,
    encoder_name: str,
    max_lengths: dict[str, int],
    image_size: int,
    cache_dir: str | Path,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Build (or reuse) the arrays for `split` of `sources`; returns their folder.

    `max_lengths` maps each source to the token length its embeddings were computed with (COCO 17,
    Localized Narratives 64); all sources of one run must share a length, since the generator sees
    one (batch, tokens, width) tensor.
    """
    lengths = {max_lengths[s] for s in sources}
    if len(lengths) != 1:
        raise ValueError(f"sources {sources} have different token lengths {max_lengths}: train them in separate runs")
    (max_length,) = lengths
    key = _cache_key({
        "sources": sources, "split": split, "encoder": encoder_name, "max_length": max_length, "size": image_size,
        "files": {s: [_parquet_fingerprint(records_dir(data_root, s, split)),
                      _parquet_fingerprint(embeddings_dir(data_root, encoder_name, max_length, s, split))]
                  for s in sources},
    })  # fmt: skip
    folder = Path(cache_dir) / f"{split}-{image_size}px-{key}"
    if (folder / "meta.json").is_file():
        return folder

    encoder = json.loads((Path(embeddings_root(data_root, encoder_name, max_length)) / "encoder.json").read_text())
    record_files = {s: _parquet_files(records_dir(data_root, s, split)) for s in sources}
    embedding_files = {
        s: _parquet_files(embeddings_dir(data_root, encoder_name, max_length, s, split)) for s in sources
    }

    # First the keys alone (no pixels, no vectors): image i is the i-th record, and every embedding row
    # (in file order) gets its caption's place, grouped by image, ordered by caption index. Pixels and
    # vectors are then copied one row group at a time: memory holds a group, never a split.
    keys = [(s, iid) for s in sources for iid in _column(record_files[s], "image_id")]
    position = {key: i for i, key in enumerate(keys)}
    embedded = [(s, iid) for s in sources for iid in _column(embedding_files[s], "image_id")]
    owner = np.array([position.get(key, -1) for key in embedded], np.int64)  # -1: an image not in the records
    index = np.array([i for s in sources for i in _column(embedding_files[s], "caption_index")], np.int64)
    per_image = np.bincount(owner[owner >= 0], minlength=len(keys))
    if missing := [keys[i] for i in np.flatnonzero(per_image == 0)]:
        raise ValueError(
            f"{len(missing)} images of split {split!r} have no caption embeddings (first: {missing[:3]}); "
            f"re-run the embed step for encoder {encoder_name!r}, max length {max_length}"
        )
    order = np.lexsort((np.arange(len(owner)), index, owner))  # by image, then caption index, then file order
    order = order[owner[order] >= 0]  # rows of images not in the records are not captions of the split
    place = np.full(len(owner), -1, np.int64)
    place[order] = np.arange(len(order))
    n_captions = len(order)

    dim, tmp = int(encoder["dim"]), folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    out = {
        "images": np.lib.format.open_memmap(tmp / "images.npy", "w+", np.uint8, (len(keys), image_size, image_size, 3)),
        "tokens": np.lib.format.open_memmap(tmp / "tokens.npy", "w+", np.float16, (n_captions, max_length, dim)),
        "masks": np.lib.format.open_memmap(tmp / "masks.npy", "w+", np.bool_, (n_captions, max_length)),
        "sentences": np.lib.format.open_memmap(tmp / "sentences.npy", "w+", np.float32, (n_captions, dim)),
    }
    i = 0
    for source in sources:
        for group in _row_groups(record_files[source], ["image"]):
            for png in group["image"].to_pylist():
                image = Image.open(io.BytesIO(png)).convert("RGB")
                if image.size != (image_size, image_size):
                    image = image.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=None)
                out["images"][i] = np.asarray(image)
                i += 1
                if progress:
                    progress(1)
    captions, row = [""] * n_captions, 0
    for source in sources:
        for group in _row_groups(embedding_files[source], EMBEDDING_COLUMNS):
            places = place[row : row + group.num_rows]
            row += group.num_rows
            kept, at = places >= 0, places[places >= 0]
            out["tokens"][at] = _binary(group["token_embeddings"], np.float16).reshape(-1, max_length, dim)[kept]
            out["masks"][at] = _binary(group["attention_mask"], np.uint8).reshape(-1, max_length)[kept].astype(bool)
            out["sentences"][at] = _binary(group["sentence_embedding"], np.float32).reshape(-1, dim)[kept]
            for c, text in zip(places.tolist(), group["caption"].to_pylist(), strict=True):
                if c >= 0:
                    captions[c] = text
    offsets = np.concatenate([[0], np.cumsum(per_image)])
    np.save(tmp / "caption_offsets.npy", offsets.astype(np.int64))
    for array in out.values():
        array.flush()
    (tmp / "meta.json").write_text(json.dumps({"captions": captions, "encoder": encoder, "sources": sources}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # atomic: a folder with meta.json is always complete
    return folder


def _binary(column, dtype) -> np.ndarray:
    """A binary column of equal-length values as one flat array (the rows' bytes, concatenated)."""
    return np.frombuffer(b"".join(column.to_pylist()), dtype)


def _parquet_files(folder: str) -> list[Path]:
    """A table's part-*.parquet files in file-name order (read_parquet_dir's order)."""
    files = sorted(Path(folder).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {folder}")
    return files


def _row_groups(files: list[Path], columns: list[str]) -> Iterator:
    """The files' rows, one Parquet row group (128-256 rows, as ingest and embed write them) at a time."""
    import pyarrow.parquet as pq

    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            yield parquet.read_row_group(group, columns=columns)


def _column(files: list[Path], name: str) -> list:
    """One column of the files as a list (keys only: small beside the pixels and vectors)."""
    return [value for group in _row_groups(files, [name]) for value in group[name].to_pylist()]


class PositionStream(torch.utils.data.Dataset):
    """Global position -> one training sample, a pure function of (seed, position).

    Epoch e visits every image once in a permutation seeded by (seed, e); each visit picks one of
    the image's captions at random (the authors' "one random caption per step") and flips the
    image horizontally with probability 1/2.
    """

    def __init__(self, arrays: TrainingArrays, *, seed: int, flip: bool = True):
        self.arrays, self.seed, self.flip = arrays, seed, flip
        self._epoch, self._order = -1, None

    def _image_index(self, epoch: int, offset: int) -> int:
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(len(self.arrays))
        return int(self._order[offset])

    def __len__(self) -> int:  # positions are unbounded; this is the epoch length
        return len(self.arrays)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        epoch, offset = divmod(position, len(self.arrays))
        index = self._image_index(epoch, offset)
        rng = np.random.default_rng([self.seed, epoch, offset, 1])
        first, last = self.arrays.caption_offsets[index], self.arrays.caption_offsets[index + 1]
        caption = int(rng.integers(first, last))
        image = torch.from_numpy(np.array(self.arrays.images[index])).permute(2, 0, 1)
        if self.flip and rng.random() < 0.5:
            image = image.flip(-1)
        return {
            "image": image.float().div(127.5).sub(1.0),  # [-1, 1]
            "words": torch.from_numpy(np.array(self.arrays.tokens[caption])).float(),
            "mask": torch.from_numpy(np.array(self.arrays.masks[caption])),
            "sentence": torch.from_numpy(np.array(self.arrays.sentences[caption])),
            "caption": torch.tensor(caption),
        }


def rank_batches(*, start: int, global_batch: int, rank: int, world_size: int) -> Iterator[list[int]]:
    """This rank's share of each global batch from position `start` on: contiguous slices, so that
    rank r of w sees positions [b + r*B/w, b + (r+1)*B/w) of the global batch starting at b."""
    per_rank = global_batch // world_size
    batch_start = start
    while True:
        first = batch_start + rank * per_rank
        yield list(range(first, first + per_rank))
        batch_start += global_batch
