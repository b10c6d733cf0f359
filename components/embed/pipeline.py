"""The embed pipeline (Apache Beam RunInference): every caption of the ingested records, encoded once.

    records/<source>/<split>/part-*.parquet --captions--> RunInference(frozen text encoder, fixed batches)
    --> embeddings/<encoder slug>-L<max length>/<source>/<split>/part-*.parquet   (EMBEDDING_SCHEMA)
        embeddings/<encoder slug>-L<max length>/encoder.json                     {name, max_length, dim, ...}

Each source is encoded at its own max length (17 tokens for COCO, 64 for Localized Narratives), so
sources sharing a length share a folder and one loaded model.
"""

from __future__ import annotations

import posixpath
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from model.data import EMBEDDING_SCHEMA, SPLITS, embeddings_dir, embeddings_root, records_dir
from model.text_encoder import resolve_encoder_path

from ..ingest.beam_io import (
    WriteParquetShards,
    check_written,
    count,
    fill_missing_shards,
    pipeline_options,
    read_counters,
    remove,
    write_json,
)
from .config import EmbedConfig
from .handler import TextEncoderHandler

ROWS_PER_ROW_GROUP = 256  # ~3 MB at 17 tokens x 384 dims in float16
COUNTERS = "embed-counts"  # counter names: source|split|in or source|split|embedded


def record_tables(config: EmbedConfig) -> list[tuple[str, str]]:
    """(source, split) pairs with ingested records; a configured source with none is an error."""
    pairs = []
    for source in config.sources:
        found = [
            (source, split)
            for split in SPLITS
            if FileSystems.match([posixpath.join(records_dir(config.data_root, source, split), "*.parquet")])[
                0
            ].metadata_list
        ]
        if not found:
            raise FileNotFoundError(f"no {source} records under {config.data_root}/records/{source}: run ingest first")
        pairs.extend(found)
    return pairs


def encoder_width(encoder: str) -> int:
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(resolve_encoder_path(encoder)).hidden_size)


def explode(record: dict):
    """A record -> ((source, split, image_id, caption index), caption) for each of its captions."""
    count(COUNTERS, (record["source"], record["split"], "in"), len(record["captions"]))
    for index, caption in enumerate(record["captions"]):
        yield (record["source"], record["split"], record["image_id"], index), caption


def to_row(keyed) -> dict:
    (source, split, image_id, index), result = keyed
    embedding = result.inference
    count(COUNTERS, (source, split, "embedded"))
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


def build(pipeline: beam.Pipeline, config: EmbedConfig, pairs: list[tuple[str, str]]) -> None:
    root, out, encoder = config.data_root, config.output_root, config.encoder
    for max_length in sorted({config.max_lengths[source] for source, _ in pairs}):
        group = [(source, split) for source, split in pairs if config.max_lengths[source] == max_length]
        reads = [
            pipeline
            | f"Read {source} {split}"
            >> beam.io.ReadFromParquet(
                posixpath.join(records_dir(root, source, split), "*.parquet"),
                columns=["image_id", "source", "split", "captions"],
            )
            for source, split in group
        ]
        handler = TextEncoderHandler(encoder=encoder, max_length=max_length, batch_size=config.batch_size)
        _ = (
            reads
            | f"Records L{max_length}" >> beam.Flatten()
            | f"Captions L{max_length}" >> beam.FlatMap(explode)
            | f"Encode L{max_length}" >> RunInference(KeyedModelHandler(handler))
            | f"Rows L{max_length}" >> beam.Map(to_row)
            | f"Write L{max_length}"
            >> WriteParquetShards(
                folder_of=lambda row, n=max_length: embeddings_dir(out, encoder, n, row["source"], row["split"]),
                schema=EMBEDDING_SCHEMA,
                shards=config.shards,
                sort_key=lambda row: (row["image_id"], row["caption_index"]),
                rows_per_group=ROWS_PER_ROW_GROUP,
            )
        )


def run_embed(*, config: EmbedConfig) -> dict:
    """Encode every caption of the configured sources; returns counts per table and the throughput."""
    started = time.perf_counter()
    root = config.output_root
    pairs = record_tables(config)
    dim = encoder_width(config.encoder)
    lengths = sorted({config.max_lengths[source] for source, _ in pairs})
    roots = {source: embeddings_root(root, config.encoder, config.max_lengths[source]) for source in config.sources}
    remove(
        [posixpath.join(folder, source) for source, folder in roots.items()]
        + [posixpath.join(r, "encoder.json") for r in set(roots.values())]
    )
    pipeline = beam.Pipeline(options=pipeline_options(config.runner, config.beam_args))
    build(pipeline, config, pairs)
    result = pipeline.run()
    if (state := result.wait_until_finish()) != "DONE":
        raise RuntimeError(f"embed pipeline ended in state {state}")
    totals = read_counters(result, COUNTERS)
    tables, written = {}, {}
    for source, split in pairs:
        n_in, n_out = totals.get((source, split, "in"), 0), totals.get((source, split, "embedded"), 0)
        if n_in != n_out:
            raise RuntimeError(f"embed: {source}/{split} had {n_in} captions but {n_out} embeddings")
        max_length = config.max_lengths[source]
        folder = embeddings_dir(root, config.encoder, max_length, source, split)
        fill_missing_shards(folder, config.shards, EMBEDDING_SCHEMA)
        written[folder] = n_out
        name = posixpath.basename(embeddings_root(root, config.encoder, max_length))
        tables.setdefault(name, {}).setdefault(source, {})[split] = n_out
    check_written(written, "embed")
    for n in lengths:
        write_json(
            posixpath.join(embeddings_root(root, config.encoder, n), "encoder.json"),
            {
                "name": config.encoder,
                "max_length": n,
                "dim": dim,
                "token_embeddings": "float16 (max_length, dim), last hidden layer",
                "attention_mask": "uint8 (max_length,)",
                "sentence_embedding": "float32 (dim,), mean over valid tokens",
            },
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
