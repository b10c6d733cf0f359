"""Beam plumbing shared by ingest and embed: the runner, one tagged output per step, staged file writers, publication.

Correct on any runner, whatever it does with bundles:

- Every file is written by an *attempt* under a staging folder: to `<name>.attempt-<uuid>.inprogress`,
  renamed to `<name>.attempt-<uuid>` once closed. A failed or killed attempt leaves only an `.inprogress`
  file, which is never used; a retried or duplicated bundle (speculative execution, a worker lost after
  finishing) leaves several complete attempts of one file, byte-identical because a file is a pure
  function of its group of rows, and `settle` keeps exactly one. Nothing is written where readers look.
- Files are a pure function of the data: rows go to a shard by a stable hash of their sort key and are
  sorted within it, and the number of shards of a folder follows its size (`shard_bytes`), so the same
  input gives byte-identical files and no worker ever holds more than about one shard.
- A local runner keeps every PCollection that crosses a stage (a grouping, a Reshuffle, a Flatten of several
  inputs) whole in memory, so no row crosses one (what does is small: references, summed counts, text
  grouped by key). Rows do not travel through the runner to their shard: each is appended to a spill file
  of its bundle under the staging folder where it is made, and only a reference (file, offset, length,
  sort key, size) is grouped; a shard's writer reads its rows back. The work is spread by small units that
  expand where they run (ingest: parts of a COCO file; embed: row groups of the records), and counts are
  summed where they are made.
- After the pipeline has finished, `publish` moves the staged outputs into place, each folder by one
  rename, and the step's completion marker (its counts or encoder.json) last: a step killed at any point
  leaves its previous outputs or none, never a half-written set under the final names.
- Counts are data (an output of the pipeline, summed by key), not Beam metrics: exact on every runner,
  including those that have no metrics (Dask).

All file access goes through Beam's FileSystems, so roots may be local or gs://, s3://.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import posixpath
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

# ---------------------------------------------------------------------------------------------
# Runners.

LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner")
LOCAL_MODES = ("threads", "processes")
# Beam 2.77's multi-threaded local runner gives its embedded SDK workers output streams that a timer thread
# flushes every second (TimeBasedBufferingClosableOutputStream; a limit of 0 means the 1 s default) with no
# lock against the thread encoding elements into them: whatever is written between the flush's get() and
# its _clear() is dropped, and the bundle ends normally. That lost ~1 record in 2,000 here. A limit longer
# than any run keeps the timer from ever firing; streams still flush by size, on the writing thread. The
# subprocess workers of multi_processing and remote runners' workers do not flush by time.
NO_TIMED_FLUSH_MS = 10**12  # ~30 years


class _DropInMemoryWarning(logging.Filter):
    """The FnApiRunner warns that N workers want multi_threading mode; ours are threads, through our environment."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "direct_running_mode should be" not in record.getMessage()


def make_pipeline(
    runner: str, beam_args: Iterable[str] = (), *, local_workers: int = 1, local_mode: str = "threads"
) -> beam.Pipeline:
    """A pipeline on `runner`; on the local runners, `local_workers` threads or processes. Locally it is always
    the FnApiRunner itself: the DirectRunner would first try to download Prism and run there. `beam_args` come
    last and win."""
    beam_args = list(beam_args)
    if runner not in LOCAL_RUNNERS:
        return beam.Pipeline(options=PipelineOptions(["--runner", runner, *beam_args]))
    if local_mode not in LOCAL_MODES:
        raise ValueError(f"local_mode must be one of {list(LOCAL_MODES)}, got {local_mode!r}")
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner, fn_runner

    if local_workers == 1:
        return beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(beam_args))
    workers = ["--direct_num_workers", str(local_workers)]
    if local_mode == "processes":
        options = PipelineOptions([*workers, "--direct_running_mode", "multi_processing", *beam_args])
        return beam.Pipeline(runner=FnApiRunner(), options=options)
    from apache_beam.transforms.environments import EmbeddedPythonGrpcEnvironment, python_sdk_capabilities

    fn_runner._LOGGER.addFilter(_DropInMemoryWarning())
    environment = EmbeddedPythonGrpcEnvironment(
        data_buffer_time_limit_ms=NO_TIMED_FLUSH_MS, capabilities=python_sdk_capabilities()
    )
    return beam.Pipeline(
        runner=FnApiRunner(default_environment=environment), options=PipelineOptions(workers + beam_args)
    )


def finish(result, what: str) -> None:
    """Wait for a pipeline; raise unless it is DONE. Closes a Dask runner's client, which would otherwise
    keep the process waiting on a scheduler that may be gone."""
    try:
        if (state := result.wait_until_finish()) != "DONE":
            raise RuntimeError(f"{what} pipeline ended in state {state}")
    finally:
        if client := getattr(result, "client", None):
            client.close()


def join_sinks(pipeline_outputs: list, label: str = "All written"):
    """One last transform that depends on every sink. The Dask runner computes only the graph of the last
    transform applied, so a pipeline must end in one that every write feeds."""
    return pipeline_outputs | f"{label}: files" >> beam.Flatten() | f"{label}: done" >> beam.Map(lambda path: path)


# ---------------------------------------------------------------------------------------------
# One output per step, tagged by kind: the Dask runner sends every element to every tagged output of a
# ParDo (with_outputs), so steps yield (kind, value) pairs and consumers select theirs.

RECORD, DEAD, COUNT = "record", "dead", "count"


def counted(key: tuple, n: int = 1) -> tuple:
    return COUNT, (key, n)


def select(outcomes, kind: str, label: str):
    return outcomes | label >> beam.FlatMap(lambda item, kind=kind: [item[1]] if item[0] == kind else [])


def select_all(outcomes: list, kind: str, label: str):
    """`kind` from each of several steps' outputs, then flattened: selected first, so that the records of a step
    never enter a Flatten (a local runner buffers a Flatten's inputs whole, records included)."""
    parts = [select(o, kind, f"{label} {i}") for i, o in enumerate(outcomes)]
    return parts | label >> beam.Flatten()


# ---------------------------------------------------------------------------------------------
# Staged writers.

ATTEMPT, INPROGRESS = ".attempt-", ".inprogress"
COUNTS_FILE = "_counts.jsonl"  # in the staging folder: the step's counts, read by its launcher
SPILL_DIR = "_spill"  # in the staging folder: rows waiting for their shard's writer (removed by `settle`)
SPILL_FILE_BYTES = 256 << 20  # a bundle's spill file is closed and a new one begun past this size
RAW = CompressionTypes.UNCOMPRESSED


def shard_name(folder: str, shard: int, shards: int, suffix: str) -> str:
    return posixpath.join(folder, f"part-{shard:05d}-of-{shards:05d}{suffix}")


def stable_shard(key, shards: int) -> int:
    """The same shard for the same key in every process (Python's hash() is salted per process)."""
    return zlib.crc32(repr(key).encode()) % shards


def value_bytes(value) -> int:
    """Bytes a value takes in a row, roughly: what sizes a shard (deterministic, unlike an encoded size)."""
    if isinstance(value, bytes | str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(value_bytes(v) for v in value)
    return 8


def shards_for(total_bytes: int, shard_bytes: int) -> int:
    return max(1, -(-total_bytes // shard_bytes))


class _WriteAttempt(beam.DoFn):
    """(relative path, items) -> one complete attempt file under the staging folder; yields the relative path."""

    def __init__(self, staging: str, render: Callable[[str, list], bytes]):
        self.staging, self.render = staging, render

    def process(self, keyed):
        relative, items = keyed
        items = [item for item in items if item is not None]  # None: an empty shard's marker
        attempt = f"{posixpath.join(self.staging, relative)}{ATTEMPT}{uuid.uuid4().hex}"
        with FileSystems.create(attempt + INPROGRESS) as stream:  # creates missing local folders
            self.write(relative, items, stream)
        FileSystems.rename([attempt + INPROGRESS], [attempt])  # complete from here on
        yield relative

    def write(self, relative: str, items: list, stream) -> None:
        stream.write(self.render(relative, items))


class _WriteParquetAttempt(_WriteAttempt):
    """(shard path, spilled rows' references) -> the shard, sorted, written a row group at a time: a row
    group's rows are read from the spill files, encoded and written before the next is read."""

    def __init__(self, staging: str, schema: pa.Schema, rows_per_group: int):
        super().__init__(staging, render=None)
        self.schema, self.rows_per_group = schema, rows_per_group

    def write(self, relative: str, refs: list, stream) -> None:
        refs = sorted(refs, key=lambda ref: ref[3])  # by the rows' sort key
        with SpillReader() as reader, pq.ParquetWriter(stream, self.schema) as writer:
            for start in range(0, max(len(refs), 1), self.rows_per_group):  # as parquet_bytes
                rows = reader.read(refs[start : start + self.rows_per_group])
                writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))


class WriteFiles(beam.PTransform):
    """Items -> one staged file per path_of(item) (relative to the staging folder), rendered by render(path, items)."""

    def __init__(self, *, staging: str, path_of: Callable, render: Callable[[str, list], bytes]):
        super().__init__()
        self.staging, self.path_of, self.render = staging, path_of, render

    def expand(self, items):
        path_of = self.path_of
        return (
            items
            | "Key by file" >> beam.Map(lambda item: (path_of(item), item))
            | "Group files" >> beam.GroupByKey()
            | "Write attempts" >> beam.ParDo(_WriteAttempt(self.staging, self.render))
        )


def parquet_bytes(rows: list[dict], schema: pa.Schema, rows_per_group: int) -> bytes:
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema) as writer:
        for start in range(0, max(len(rows), 1), rows_per_group):
            writer.write_table(pa.Table.from_pylist(rows[start : start + rows_per_group], schema=schema))
    return sink.getvalue().to_pybytes()


class _SpillRows(beam.DoFn):
    """(folder, row) -> (folder, (spill file, offset, length, sort key, row bytes)). The row is appended,
    pickled, to this bundle's spill file under `spill_dir` (a new one past SPILL_FILE_BYTES); its file is
    complete when the bundle finishes, before anything downstream of a grouping reads it. A retried or
    duplicated bundle writes its own files: only the references of the bundle the runner keeps are read."""

    def __init__(self, spill_dir: str, sort_key: Callable):
        self.spill_dir, self.sort_key = spill_dir, sort_key

    def start_bundle(self):
        self.stream, self.path, self.written = None, None, 0

    def _close(self):
        if self.stream is not None:
            self.stream.close()
        self.stream, self.path, self.written = None, None, 0

    def process(self, keyed):
        folder, row = keyed
        data = pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL)
        if self.stream is not None and self.written + len(data) > SPILL_FILE_BYTES:
            self._close()
        if self.stream is None:
            self.path = posixpath.join(self.spill_dir, f"{uuid.uuid4().hex}.rows")
            self.stream = FileSystems.create(self.path, compression_type=RAW)  # creates missing local folders
        offset = self.written
        self.stream.write(data)
        self.written += len(data)
        yield folder, (self.path, offset, len(data), self.sort_key(row), sum(value_bytes(v) for v in row.values()))

    def finish_bundle(self):
        self._close()  # nothing is emitted here: the Dask runner drops finish_bundle's outputs

    def teardown(self):
        if getattr(self, "stream", None) is not None:  # a failed bundle: its file is never referenced
            self.stream.close()


class SpillReader:
    """Reads spilled rows by their (spill file, offset, length, ...) references, keeping each file open."""

    def __init__(self):
        self.streams: dict = {}

    def __enter__(self) -> SpillReader:
        return self

    def __exit__(self, *_) -> None:
        for stream in self.streams.values():
            stream.close()
        self.streams.clear()

    def read(self, refs: list) -> list:
        """The rows of `refs`, in their order (each file read in offset order)."""
        rows: list = [None] * len(refs)
        for i in sorted(range(len(refs)), key=lambda i: (refs[i][0], refs[i][1])):
            path, offset, length = refs[i][:3]
            if path not in self.streams:
                self.streams[path] = FileSystems.open(path, compression_type=RAW)
            stream = self.streams[path]
            stream.seek(offset)
            rows[i] = pickle.loads(stream.read(length))
        return rows


class WriteParquetShards(beam.PTransform):
    """Row dicts (a PCollection, or a tuple of them, each spilled where it is made: a tuple is not flattened
    first) -> <staging>/<folder_of(row)>/part-SSSSS-of-NNNNN.parquet. A folder gets as many shards as its
    rows' bytes need at `shard_bytes` each; a row's shard is a stable hash of its sort key, rows are sorted
    within a shard, and every shard is written, empty or not. Rows wait in spill files under
    <staging>/_spill (see the module's docstring); a shard's writer reads and writes them a row group at a
    time, so a worker holds one row group's rows and the shard's references, not the shard."""

    def __init__(
        self, *, staging: str, folder_of: Callable, schema: pa.Schema, sort_key: Callable, shard_bytes: int,
        rows_per_group: int,
    ):  # fmt: skip
        super().__init__()
        self.staging, self.folder_of, self.schema = staging, folder_of, schema
        self.sort_key, self.shard_bytes, self.rows_per_group = sort_key, shard_bytes, rows_per_group

    def expand(self, rows):
        folder_of, sort_key, shard_bytes = self.folder_of, self.sort_key, self.shard_bytes
        schema, rows_per_group = self.schema, self.rows_per_group
        spill_dir = posixpath.join(self.staging, SPILL_DIR)
        parts = rows if isinstance(rows, tuple) else (rows,)  # a tuple of row sets: each spilled where it is made
        spilled = [
            part
            | f"Key by folder {i}" >> beam.Map(lambda row: (folder_of(row), row))
            | f"Spill rows {i}" >> beam.ParDo(_SpillRows(spill_dir, sort_key))
            for i, part in enumerate(parts)
        ] | "Spilled" >> beam.Flatten()
        shard_counts = (
            spilled
            | "Row bytes" >> beam.MapTuple(lambda folder, ref: (folder, ref[4]))
            | "Folder bytes" >> beam.CombinePerKey(sum)
            | "Shards per folder" >> beam.MapTuple(lambda folder, total: (folder, shards_for(total, shard_bytes)))
        )

        def path_of(folder: str, ref: tuple, shards: dict) -> str:
            n = shards[folder]
            return shard_name(folder, stable_shard(ref[3], n), n, ".parquet")

        placed = spilled | "Place in shard" >> beam.Map(
            lambda kv, shards: (path_of(kv[0], kv[1], shards), kv[1]), shards=beam.pvalue.AsDict(shard_counts)
        )
        every_shard = shard_counts | "Every shard" >> beam.FlatMapTuple(
            lambda folder, n: [(shard_name(folder, s, n, ".parquet"), None) for s in range(n)]
        )

        return (
            (placed, every_shard)
            | "Shards and rows" >> beam.Flatten()
            | "Group shards" >> beam.GroupByKey()
            | "Write shards" >> beam.ParDo(_WriteParquetAttempt(self.staging, schema, rows_per_group))
        )


def json_lines(items: list, sort_key: Callable, to_json: Callable) -> bytes:
    return b"".join(to_json(item).encode() + b"\n" for item in sorted(items, key=sort_key))


class WriteCounts(beam.PTransform):
    """Steps' outputs -> the sums of their counts (COUNT pairs of (key tuple, n)), staged as COUNTS_FILE (read
    back by `read_counts`). Each step's counts are summed where they are made, before the Flatten: a local
    runner holds a Flatten's inputs whole, one count per record."""

    def __init__(self, staging: str):
        super().__init__()
        self.staging = staging

    def expand(self, outcomes):
        return (
            [
                select(step, COUNT, f"Counts {i}") | f"Sum counts {i}" >> beam.CombinePerKey(sum)
                for i, step in enumerate(outcomes)
            ]
            | "Step counts" >> beam.Flatten()
            | "Sum counts" >> beam.CombinePerKey(sum)
            | "Stage counts"
            >> WriteFiles(
                staging=self.staging,
                path_of=lambda _: COUNTS_FILE,
                render=lambda _, items: json_lines(items, sort_key=lambda kv: kv[0], to_json=json.dumps),
            )
        )


# ---------------------------------------------------------------------------------------------
# Staging and publication.


def is_local(path: str) -> bool:
    return "://" not in path


def new_staging(output_root: str, step: str) -> str:
    """A fresh staging folder for one run of `step`, after removing any that killed runs of it left."""
    parent = posixpath.join(output_root, ".staging")
    runs = {f.split("/")[0] for f in staged_files(parent)}
    remove(sorted(posixpath.join(parent, run) for run in runs if run.rsplit("-", 1)[0] == step))
    return posixpath.join(parent, f"{step}-{uuid.uuid4().hex[:12]}")


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def remove(paths: list[str]) -> None:
    """Delete files and folders (missing paths are fine)."""
    if doomed := [path for path in paths if FileSystems.exists(path)]:
        FileSystems.delete(doomed)


def staged_files(staging: str) -> list[str]:
    """Every file under the staging folder, relative to it."""
    if not exists(staging):
        return []
    matched = FileSystems.match([posixpath.join(staging, "**")])[0].metadata_list
    return sorted(m.path[len(staging.rstrip("/")) + 1 :] for m in matched)


def settle(staging: str) -> dict[str, int]:
    """Give each staged file its final name: one complete attempt per name is kept (all are byte-identical),
    other attempts, incomplete ones and the spilled rows are deleted. Returns {name: attempts found} for the record."""
    remove([posixpath.join(staging, SPILL_DIR)])  # rows already in their shards
    attempts: dict[str, list[str]] = {}
    doomed = []
    for relative in staged_files(staging):
        if relative.endswith(INPROGRESS):
            doomed.append(relative)  # an attempt that failed or was killed: never complete
        elif ATTEMPT in posixpath.basename(relative):
            attempts.setdefault(relative.rsplit(ATTEMPT, 1)[0], []).append(relative)
    for name, found in attempts.items():
        keep, *others = sorted(found)
        doomed.extend(others)
        FileSystems.rename([posixpath.join(staging, keep)], [posixpath.join(staging, name)])
    remove([posixpath.join(staging, relative) for relative in doomed])
    return {name: len(found) for name, found in attempts.items()}


def read_counts(staging: str) -> dict[tuple[str, ...], int]:
    path = posixpath.join(staging, COUNTS_FILE)
    if not exists(path):
        return {}
    with FileSystems.open(path) as stream:
        return {tuple(key): n for key, n in (json.loads(line) for line in stream.read().decode().splitlines())}


def write_bytes(path: str, data: bytes) -> None:
    with FileSystems.create(path) as stream:  # creates missing local folders
        stream.write(data)


def write_json(path: str, value) -> None:
    write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def write_empty_parquet(folder: str, schema: pa.Schema) -> None:
    """A folder that got no rows still holds one (schema-only) file, so readers find the table."""
    write_bytes(shard_name(folder, 0, 1, ".parquet"), parquet_bytes([], schema, 1))


def publish(staging: str, output_root: str, outputs: list[str], markers: list[str]) -> None:
    """Move `outputs` then `markers` (paths relative to both roots) from the staging folder into place, and
    delete the staging folder. The old markers go first, the new ones come last: a reader that finds a
    step's marker finds all of that run's outputs. Locally each output moves by one rename (a folder is
    never half old, half new); elsewhere file by file, which the markers cover."""
    remove([posixpath.join(output_root, marker) for marker in markers])
    for relative in [*outputs, *markers]:
        source, target = posixpath.join(staging, relative), posixpath.join(output_root, relative)
        if is_local(staging):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            old = f"{source}.old"
            if os.path.lexists(target):
                os.replace(target, old)  # out of the way in one step; deleted with the staging folder
            os.replace(source, target)
        else:
            remove([target])
            files = [f for f in staged_files(staging) if f == relative or f.startswith(relative.rstrip("/") + "/")]
            FileSystems.rename(
                [posixpath.join(staging, f) for f in files], [posixpath.join(output_root, f) for f in files]
            )
    if is_local(staging):
        shutil.rmtree(staging, ignore_errors=True)
        parent = os.path.dirname(staging)
        if os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
    else:
        remove([staging])


# ---------------------------------------------------------------------------------------------
# Checks.


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
