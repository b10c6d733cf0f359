"""The on-disk dataset contract between ingestion (components/ingest, components/embed) and
training/evaluation: Parquet tables of image records and of caption embeddings.

Layout under a processed-data root:

    records/<source>/<split>/part-*.parquet          RECORD_SCHEMA, one row per image
    embeddings/<encoder slug>-L<max length>/<source>/<split>/part-*.parquet
                                                     EMBEDDING_SCHEMA, one row per caption
    embeddings/<encoder slug>-L<max length>/encoder.json   {name, max_length, dim}

`source` is one of SOURCES; `split` is "train" or "val". Embedding rows point at their record
by (source, split, image_id) and at the caption by its index in the record's `captions`.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pyarrow as pa

SOURCES = ("coco", "ln_coco", "ln_open_images")
SPLITS = ("train", "val")
# Caption tokens per source, the embeddings' <max length>: XMC-GAN cuts COCO captions to 17 tokens;
# Localized Narratives are long, 64 tokens keep most of them.
DEFAULT_MAX_LENGTHS = {"coco": 17, "ln_coco": 64, "ln_open_images": 64}

RECORD_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),  # COCO id as decimal text, or Open Images id
        pa.field("source", pa.string(), nullable=False),  # one of SOURCES
        pa.field("split", pa.string(), nullable=False),  # "train" | "val"
        pa.field("file_name", pa.string(), nullable=False),  # image path relative to the source's image folder
        pa.field("image", pa.binary(), nullable=False),  # PNG, RGB, width x height below
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("original_width", pa.int32(), nullable=False),
        pa.field("original_height", pa.int32(), nullable=False),
        pa.field("captions", pa.list_(pa.string()), nullable=False),  # every caption of the image, in file order
    ]
)

EMBEDDING_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("caption_index", pa.int32(), nullable=False),  # index into the record's captions
        pa.field("caption", pa.string(), nullable=False),
        pa.field("token_embeddings", pa.binary(), nullable=False),  # float16, C order, (max_length, dim)
        pa.field("attention_mask", pa.binary(), nullable=False),  # uint8 0/1, (max_length,)
        pa.field("sentence_embedding", pa.binary(), nullable=False),  # float32, (dim,): mean over valid tokens
    ]
)


def encoder_slug(name_or_path: str) -> str:
    """A folder name for an encoder: its hub name or the last path parts, filesystem-safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name_or_path.strip("/")).strip("-")


# Paths are joined as text so that roots may be URLs of any filesystem Beam or fsspec reads (gs://, s3://).
def records_dir(root: str | Path, source: str, split: str) -> str:
    return posixpath.join(str(root), "records", source, split)


def embeddings_root(root: str | Path, encoder_name: str, max_length: int) -> str:
    return posixpath.join(str(root), "embeddings", f"{encoder_slug(encoder_name)}-L{max_length}")


def embeddings_dir(root: str | Path, encoder_name: str, max_length: int, source: str, split: str) -> str:
    return posixpath.join(embeddings_root(root, encoder_name, max_length), source, split)


# ---------------------------------------------------------------------------------------------
# Reading for training and evaluation.


def read_parquet_dir(path: str | Path, *, columns: list[str] | None = None) -> pa.Table:
    """All part-*.parquet files of a folder as one table, in file-name order (deterministic)."""
    import pyarrow.parquet as pq

    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Parquet files in {path}")
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
