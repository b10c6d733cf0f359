"""Beam plumbing shared by ingest and embed: options, output layout, deterministic writers, counters.

All file access goes through Beam's FileSystems, so roots may be local or any filesystem Beam has
installed (gs://, s3://). Writers key rows by a stable shard of their sort key, group, sort and
write each shard in one piece: the same input gives byte-identical files, so DVC hashes only
change when the data does.
"""

from __future__ import annotations

import json
import posixpath
import zlib
from collections.abc import Callable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

# Output layout beside model/data.py's records/ and embeddings/: one folder or file per source, so
# that per-source runs (one DVC stage each) write disjoint outputs.


def dead_letter_dir(root: str, source: str) -> str:
    return posixpath.join(root, "dead_letter", source)


def counts_path(root: str, source: str) -> str:
    return posixpath.join(root, "counts", f"{source}.json")


def shard_name(folder: str, shard: int, shards: int, suffix: str) -> str:
    return posixpath.join(folder, f"part-{shard:05d}-of-{shards:05d}{suffix}")


def pipeline_options(runner: str, beam_args: tuple[str, ...], *, local_threads: int = 1) -> PipelineOptions:
    """Options naming the runner explicitly (Beam's default would first try to download Prism); on the local
    runners, `local_threads` worker threads. `beam_args` come last and win."""
    threads = ["--direct_num_workers", str(local_threads), "--direct_running_mode", "multi_threading"]
    return PipelineOptions(["--runner", runner, *(threads if local_threads > 1 else []), *beam_args])


def remove(paths: list[str]) -> None:
    """Delete files and folders a previous run left (missing paths are fine)."""
    if doomed := [path for path in paths if FileSystems.exists(path)]:
        FileSystems.delete(doomed)


def write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as stream:  # creates missing local folders
        stream.write(text.encode())


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def stable_shard(key, shards: int) -> int:
    """The same shard for the same key in every process (Python's hash() is salted per process)."""
    return zlib.crc32(repr(key).encode()) % shards


# ---------------------------------------------------------------------------------------------
# Counts: Beam counters, exact once a batch pipeline has finished (committed values).


def count(namespace: str, key: tuple[str, ...], n: int = 1) -> None:
    Metrics.counter(namespace, "|".join(key)).inc(n)


def read_counters(result, namespace: str) -> dict[tuple[str, ...], int]:
    """Counter totals of a finished pipeline, summed over steps, keyed by the tuple given to `count`."""
    totals: dict[tuple[str, ...], int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        key = tuple(counter.key.metric.name.split("|"))
        totals[key] = totals.get(key, 0) + counter.result
    return totals


# ---------------------------------------------------------------------------------------------
# Writers.


class _WriteParquetShard(beam.DoFn):
    def __init__(self, schema: pa.Schema, shards: int, sort_key: Callable, rows_per_group: int):
        self.schema, self.shards, self.sort_key, self.rows_per_group = schema, shards, sort_key, rows_per_group

    def process(self, keyed):
        (folder, shard), rows = keyed
        rows = sorted(rows, key=self.sort_key)
        path = shard_name(folder, shard, self.shards, ".parquet")
        with FileSystems.create(path) as stream:
            writer = pq.ParquetWriter(stream, self.schema)
            for start in range(0, len(rows), self.rows_per_group):
                chunk = rows[start : start + self.rows_per_group]
                writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema))
            writer.close()
        yield path


class WriteParquetShards(beam.PTransform):
    """Row dicts -> <folder_of(row)>/part-SSSSS-of-NNNNN.parquet, `shards` files per folder, rows sorted by
    `sort_key`. A whole shard is assembled in one worker's memory: size `shards` for that."""

    def __init__(self, *, folder_of: Callable, schema: pa.Schema, shards: int, sort_key: Callable, rows_per_group: int):
        super().__init__()
        self.folder_of, self.schema, self.shards = folder_of, schema, shards
        self.sort_key, self.rows_per_group = sort_key, rows_per_group

    def expand(self, rows):
        folder_of, sort_key, shards = self.folder_of, self.sort_key, self.shards
        return (
            rows
            | "Key by shard" >> beam.Map(lambda row: ((folder_of(row), stable_shard(sort_key(row), shards)), row))
            | "Group shards" >> beam.GroupByKey()
            | "Write shards" >> beam.ParDo(_WriteParquetShard(self.schema, shards, sort_key, self.rows_per_group))
        )


def parquet_rows(folder: str) -> int:
    """Rows in the Parquet files of a folder, from their footers (no data read)."""
    total = 0
    for match in FileSystems.match([posixpath.join(folder, "*.parquet")])[0].metadata_list:
        with FileSystems.open(match.path) as stream:
            total += pq.ParquetFile(stream).metadata.num_rows
    return total


def check_written(expected: dict[str, int], what: str) -> None:
    """Raise when a folder holds another number of rows than the pipeline counted writing to it:
    a record counted but not on disk is data lost, and must stop the run, not pass silently."""
    found = {folder: parquet_rows(folder) for folder in expected}
    if wrong := {folder: (n, found[folder]) for folder, n in expected.items() if found[folder] != n}:
        details = "; ".join(f"{folder}: counted {n}, on disk {m}" for folder, (n, m) in wrong.items())
        raise RuntimeError(f"{what}: rows on disk differ from rows counted ({details})")


def fill_missing_shards(folder: str, shards: int, schema: pa.Schema) -> None:
    """Write an empty (schema-only) file for each shard that received no rows, so a folder always has all N."""
    for shard in range(shards):
        path = shard_name(folder, shard, shards, ".parquet")
        if not FileSystems.exists(path):
            with FileSystems.create(path) as stream:
                pq.write_table(schema.empty_table(), stream)


class _WriteJsonLines(beam.DoFn):
    def __init__(self, sort_key: Callable):
        self.sort_key = sort_key

    def process(self, keyed):
        path, items = keyed
        with FileSystems.create(path) as stream:
            for item in sorted(items, key=self.sort_key):
                stream.write(item.to_json().encode() + b"\n")
        yield path


class WriteJsonLines(beam.PTransform):
    """Items with a to_json() -> one JSON Lines file per path_of(item), sorted by `sort_key`."""

    def __init__(self, *, path_of: Callable, sort_key: Callable):
        super().__init__()
        self.path_of, self.sort_key = path_of, sort_key

    def expand(self, items):
        path_of = self.path_of
        return (
            items
            | "Key by file" >> beam.Map(lambda item: (path_of(item), item))
            | "Group files" >> beam.GroupByKey()
            | "Write files" >> beam.ParDo(_WriteJsonLines(self.sort_key))
        )
