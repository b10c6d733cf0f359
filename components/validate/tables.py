"""The ingested data as small pandas tables for Great Expectations: no image pixels, only what is checked.

records     one row per image: the record columns without the PNG bytes, plus the PNG's own header size
captions    one row per caption, with its length
counts      one row per source, split and unit from counts/<source>.json
embeddings  one row per caption embedding: byte lengths, valid tokens, finiteness, agreement with the record
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from model.data import EMBEDDING_SCHEMA, RECORD_SCHEMA, records_dir

from ..ingest.layout import counts_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCH_ROWS = 1024  # rows decoded at a time: image bytes never all sit in memory

RECORD_COLUMNS = [f.name for f in RECORD_SCHEMA if f.name != "image"] + ["image_bytes", "png_width", "png_height"]
RECORD_FRAME_COLUMNS = [*RECORD_COLUMNS, "n_captions"]
EMBEDDING_COLUMNS = [
    *("image_id", "caption_index", "caption", "token_bytes", "mask_bytes", "sentence_bytes"),
    *("valid_tokens", "finite", "matches_record"),
]


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; (-1, -1) when `data` is not a PNG."""
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        return -1, -1
    return struct.unpack(">II", data[16:24])


def schema_problem(actual: pa.Schema, expected: pa.Schema) -> str:
    """What differs between a file's schema and the contract ("" when they agree, nullability included)."""
    names, wanted = actual.names, expected.names
    if names != wanted:
        missing, extra = [n for n in wanted if n not in names], [n for n in names if n not in wanted]
        return f"columns {names} differ from the contract's {wanted} (missing {missing}, extra {extra})"
    for got, want in zip(actual, expected, strict=True):
        if not got.type.equals(want.type):
            return f"column {got.name!r} is {got.type}, the contract says {want.type}"
        if got.nullable != want.nullable:
            return f"column {got.name!r} is {'nullable' if got.nullable else 'not nullable'}, unlike the contract"
    return ""


def parquet_files(folder: str | Path) -> list[Path]:
    return sorted(Path(folder).glob("*.parquet"))


def load_records(root: str, source: str, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(records, files): a row per record (its columns but the PNG bytes, plus the PNG's byte count and header
    size and the number of captions), and a row per Parquet file (by name, the same in any checkout) with
    its schema problem ("" if none)."""
    frames, files = [], []
    for path in parquet_files(records_dir(root, source, split)):
        parquet = pq.ParquetFile(path)
        problem = schema_problem(parquet.schema_arrow, RECORD_SCHEMA)
        files.append({"file": path.name, "rows": parquet.metadata.num_rows, "schema_problem": problem})
        if problem:
            continue  # its rows cannot be read as records; the schema check reports the file
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            images = batch.column("image").to_pylist()
            frame = batch.drop_columns(["image"]).to_pandas()
            frame["image_bytes"] = [len(image) if image is not None else None for image in images]
            sizes = [png_size(image or b"") for image in images]
            frame["png_width"], frame["png_height"] = [s[0] for s in sizes], [s[1] for s in sizes]
            frame["n_captions"] = [len(c) if c is not None else None for c in frame["captions"]]
            frames.append(frame)
    records = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RECORD_FRAME_COLUMNS)
    return records[RECORD_FRAME_COLUMNS], pd.DataFrame(files, columns=["file", "rows", "schema_problem"])


def captions_of(records: pd.DataFrame) -> pd.DataFrame:
    rows = [
        {"image_id": image_id, "caption_index": index, "caption": caption, "chars": len(caption or "")}
        for image_id, captions in zip(records["image_id"], records["captions"], strict=True)
        for index, caption in enumerate(captions if captions is not None else [])
    ]
    return pd.DataFrame(rows, columns=["image_id", "caption_index", "caption", "chars"])


def load_counts(root: str, source: str) -> tuple[dict | None, pd.DataFrame]:
    """(the counts file, a row per split and unit with rejected fraction and unaccounted inputs)."""
    path = Path(counts_path(root, source))
    columns = ["key", "in", "ok", "rejected", "unaccounted", "rejected_fraction"]
    if not path.is_file():
        return None, pd.DataFrame(columns=columns)
    counts = json.loads(path.read_text())
    rows = []
    for split, units in counts["splits"].items():
        for unit, c in units.items():
            ok = c.get("written", c.get("parsed", 0))
            fraction = c["rejected"] / c["in"] if c["in"] else 0.0
            unaccounted = c["in"] - ok - c["rejected"]
            rows.append([f"{source}/{split}/{unit}", c["in"], ok, c["rejected"], unaccounted, fraction])
    return counts, pd.DataFrame(rows, columns=columns)


def load_embeddings(folder: str | Path, captions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(embeddings, files): a row per embedding with its byte lengths, valid tokens, finiteness and whether its
    caption is the record's caption at that index; a row per Parquet file (by name) with its schema problem."""
    by_key = dict(
        zip(zip(captions["image_id"], captions["caption_index"], strict=True), captions["caption"], strict=True)
    )
    frames, files = [], []
    for path in parquet_files(folder):
        parquet = pq.ParquetFile(path)
        problem = schema_problem(parquet.schema_arrow, EMBEDDING_SCHEMA)
        files.append({"file": path.name, "rows": parquet.metadata.num_rows, "schema_problem": problem})
        if not problem:
            frames += [
                embedding_rows(batch.to_pydict(), by_key) for batch in parquet.iter_batches(batch_size=BATCH_ROWS)
            ]
    embeddings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EMBEDDING_COLUMNS)
    return embeddings, pd.DataFrame(files, columns=["file", "rows", "schema_problem"])


def embedding_rows(columns: dict[str, list], captions: dict[tuple[str, int], str]) -> pd.DataFrame:
    keys = list(zip(columns["image_id"], columns["caption_index"], strict=True))
    tokens, masks, sentences = columns["token_embeddings"], columns["attention_mask"], columns["sentence_embedding"]
    return pd.DataFrame(
        {
            "image_id": columns["image_id"],
            "caption_index": columns["caption_index"],
            "caption": columns["caption"],
            "token_bytes": [len(t) for t in tokens],
            "mask_bytes": [len(m) for m in masks],
            "sentence_bytes": [len(s) for s in sentences],
            "valid_tokens": [int(np.frombuffer(m, np.uint8).sum()) for m in masks],
            "finite": [finite(t, np.float16) and finite(s, np.float32) for t, s in zip(tokens, sentences, strict=True)],
            "matches_record": [captions.get(k) == c for k, c in zip(keys, columns["caption"], strict=True)],
        },
        columns=EMBEDDING_COLUMNS,
    )


def finite(data: bytes, dtype) -> bool:
    """Whether `data` holds whole values of `dtype`, all finite."""
    return len(data) % np.dtype(dtype).itemsize == 0 and bool(np.isfinite(np.frombuffer(data, dtype)).all())
