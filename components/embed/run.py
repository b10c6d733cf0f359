"""The embed pipeline (Apache Beam): every caption of the ingested records, encoded once.

    records/<source>/<split>/part-*.parquet, a row group (128 records) at a time --its captions--> frozen text
        encoder (a Beam ModelHandler, fixed batches in key order within the row group)
    --> embeddings/<encoder slug>-L<max length>/<source>/<split>/part-*.parquet   (EMBEDDING_SCHEMA)
        embeddings/<encoder slug>-L<max length>/encoder.json                     {name, max_length, dim, ...}

Each source is encoded at its own max length (17 tokens for COCO, 64 for Localized Narratives), so
sources sharing a length share a folder and one loaded model. The encoder runs in float64 and its
outputs are rounded once to their stored types: float32 kernels differ in their last bits between
CPUs (vector widths, fused multiply-adds), float64 results agree far below what the rounding keeps,
so the same records give the same bytes everywhere. Files are staged, settled and published as
components/beam_io.py describes.
"""

from __future__ import annotations

import posixpath
import time
from collections import Counter

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from components.beam_io import (
    RECORD,
    WriteCounts,
    WriteParquetShards,
    check_written,
    counted,
    exists,
    finish,
    join_sinks,
    make_pipeline,
    new_staging,
    publish,
    read_counts,
    select,
    settle,
    write_empty_parquet,
    write_json,
)
from model.data import EMBEDDING_SCHEMA, SPLITS, embeddings_dir, embeddings_root, records_dir
from model.text_encoder import resolve_encoder_path

from .config import EmbedConfig
from .handler import TextEncoderHandler

ROWS_PER_ROW_GROUP = 256  # ~3 MB at 17 tokens x 384 dims in float16
RECORD_COLUMNS = ["image_id", "source", "split", "captions"]


def record_files(config: EmbedConfig) -> dict[tuple[str, str], list[str]]:
    """The records' Parquet files per (source, split); a configured source with none is an error."""
    found = {}
    for source in config.sources:
        for split in SPLITS:
            pattern = posixpath.join(records_dir(config.data_root, source, split), "*.parquet")
            if files := sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list):
                found[(source, split)] = files
        if not any(s == source for s, _ in found):
            raise FileNotFoundError(f"no {source} records under {config.data_root}/records/{source}: run ingest first")
    return found


def row_groups(paths: list[str]) -> list[tuple[str, int]]:
    """(file, row group) for every row group of the records files, from their footers: the unit of work."""
    groups = []
    for path in paths:
        with FileSystems.open(path) as stream:
            groups.extend((path, group) for group in range(pq.ParquetFile(stream).num_row_groups))
    return groups


def read_row_group(path: str, group: int) -> list[dict]:
    """One row group of a records file (the caption columns). Read by hand, not by ReadFromParquet: the Dask
    runner has no translation for Beam's Read."""
    with FileSystems.open(path) as stream:
        return pq.ParquetFile(stream).read_row_group(group, columns=RECORD_COLUMNS).to_pylist()


def encoder_width(encoder: str) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(resolve_encoder_path(encoder)).hidden_size)


class EncodeRowGroups(beam.DoFn):
    """(records file, row group) -> (RECORD, embedding row) per caption of its records and their counts. The
    captions are encoded `batch_size` at a time in (image id, caption index) order, so a row group always
    gives the same batches; its rows go on to the writers as they are encoded, so that captions never
    cross a stage (a local runner holds whatever does whole in memory). Not RunInference: it batches across
    a bundle in arrival order and emits its last batch in finish_bundle, whose outputs the Dask runner drops."""

    def __init__(self, handler: TextEncoderHandler):
        self.handler = handler

    def setup(self):
        self.model = self.handler.load_model()

    def process(self, element: tuple[str, int]):
        records = read_row_group(*element)
        captions = sorted(
            ((r["source"], r["split"], r["image_id"], index), caption)
            for r in records
            for index, caption in enumerate(r["captions"])
        )
        embedded = Counter()
        for start in range(0, len(captions), self.handler.batch_size):
            chunk = captions[start : start + self.handler.batch_size]
            results = self.handler.run_inference([caption for _, caption in chunk], self.model)
            for ((source, split, image_id, index), _), result in zip(chunk, results, strict=True):
                embedded[(source, split)] += 1
                yield RECORD, embedding_row(source, split, image_id, index, result)
        for (source, split), n in Counter((r["source"], r["split"]) for r in records for _ in r["captions"]).items():
            yield counted((source, split, "in"), n)
        for (source, split), n in embedded.items():
            yield counted((source, split, "embedded"), n)


def embedding_row(source: str, split: str, image_id: str, index: int, result) -> dict:
    embedding = result.inference
    return {
        "image_id": image_id,
        "source": source,
        "split": split,
        "caption_index": index,
        "caption": result.example,
        "token_embeddings": embedding.token_embeddings,
        "attention_mask": embedding.attention_mask,
        "sentence_embedding": embedding.sentence_embedding,
    }


def build(pipeline: beam.Pipeline, config: EmbedConfig, files: dict[tuple[str, str], list[str]], staging: str) -> None:
    encoder, sinks, outcomes = config.encoder, [], []
    for max_length in sorted({config.max_lengths[source] for source, _ in files}):
        paths = [p for (source, _), found in files.items() if config.max_lengths[source] == max_length for p in found]
        handler = TextEncoderHandler(encoder=encoder, max_length=max_length, batch_size=config.batch_size)
        encoded = (
            pipeline
            | f"Row groups L{max_length}" >> beam.Create(row_groups(paths))
            | f"Spread L{max_length}" >> beam.Reshuffle()
            | f"Encode L{max_length}" >> beam.ParDo(EncodeRowGroups(handler))
        )
        sinks.append(
            select(encoded, RECORD, f"Embeddings L{max_length}")
            | f"Write L{max_length}"
            >> WriteParquetShards(
                staging=staging,
                folder_of=lambda row, n=max_length: embeddings_dir("", encoder, n, row["source"], row["split"]),
                schema=EMBEDDING_SCHEMA,
                sort_key=lambda row: (row["image_id"], row["caption_index"]),
                shard_bytes=config.shard_bytes,
                rows_per_group=ROWS_PER_ROW_GROUP,
            )
        )
        outcomes.append(encoded)
    counts = tuple(outcomes) | "Write counts" >> WriteCounts(staging)
    join_sinks([*sinks, counts])


def run_embed(*, config: EmbedConfig) -> dict:
    """Encode every caption of the configured sources into a staging folder, check, then publish each source's
    embeddings and encoder.json (last); returns counts per table and the throughput."""
    started = time.perf_counter()
    root = config.output_root
    files = record_files(config)
    dim = encoder_width(config.encoder)
    staging = new_staging(root, "embed-" + "-".join(config.sources))
    pipeline = make_pipeline(
        config.runner, config.beam_args, local_workers=config.local_workers, local_mode=config.local_mode
    )
    build(pipeline, config, files, staging)
    finish(pipeline.run(), "embed")
    settle(staging)
    totals = read_counts(staging)
    tables, written = {}, {}
    for source, split in files:
        n_in, n_out = totals.get((source, split, "in"), 0), totals.get((source, split, "embedded"), 0)
        if n_in != n_out:
            raise RuntimeError(f"embed: {source}/{split} had {n_in} captions but {n_out} embeddings")
        max_length = config.max_lengths[source]
        folder = embeddings_dir(staging, config.encoder, max_length, source, split)
        if not exists(folder):  # records without captions: still a table
            write_empty_parquet(folder, EMBEDDING_SCHEMA)
        written[folder] = n_out
        name = posixpath.basename(embeddings_root(root, config.encoder, max_length))
        tables.setdefault(name, {}).setdefault(source, {})[split] = n_out
    check_written(written, "embed")
    lengths = sorted({config.max_lengths[source] for source in config.sources})
    for n in lengths:
        write_json(
            posixpath.join(embeddings_root(staging, config.encoder, n), "encoder.json"),
            {
                "name": config.encoder,
                "max_length": n,
                "dim": dim,
                "token_embeddings": "float16 (max_length, dim), last hidden layer",
                "attention_mask": "uint8 (max_length,)",
                "sentence_embedding": "float32 (dim,), mean over valid tokens",
                "computed_in": "float64, rounded once (the same bytes on every CPU)",
            },
        )
    relative = {source: embeddings_root("", config.encoder, config.max_lengths[source]) for source in config.sources}
    publish(
        staging,
        root,
        outputs=[posixpath.join(folder, source) for source, folder in relative.items()],
        markers=sorted({posixpath.join(folder, "encoder.json") for folder in relative.values()}),
    )
    seconds = time.perf_counter() - started
    captions = sum(n for table in tables.values() for splits in table.values() for n in splits.values())
    return {
        "data_root": config.data_root,
        "output_root": root,
        "encoder": config.encoder,
        "dim": dim,
        "tables": tables,
        "captions": captions,
        "seconds": round(seconds, 3),
        "captions_per_second": round(captions / seconds, 1),
    }
