"""Beam plumbing shared by ingest and embed: options, output layout, counts collected in the pipeline.

All file access goes through Beam's FileSystems, so output roots may be local or any filesystem
Beam has installed (gs://, s3://).
"""

from __future__ import annotations

import json
import posixpath
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

# Output layout beside model/data.py's records/ and embeddings/: one folder or file per source, so
# that per-source runs (one DVC stage each) write disjoint outputs.


def dead_letter_dir(root: str, source: str) -> str:
    return posixpath.join(root, "dead_letter", source)


def counts_path(root: str, source: str) -> str:
    return posixpath.join(root, "counts", f"{source}.json")


def pipeline_options(runner: str, beam_args: tuple[str, ...]) -> PipelineOptions:
    """Options naming the runner explicitly: Beam's default would first try to download Prism."""
    return PipelineOptions(["--runner", runner, *beam_args])


def remove(paths: list[str]) -> None:
    """Delete files and folders a previous run left (missing paths are fine)."""
    if doomed := [path for path in paths if FileSystems.exists(path)]:
        FileSystems.delete(doomed)


def write_json(path: str, value) -> None:
    with FileSystems.create(path) as stream:  # creates missing local folders
        stream.write((json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str):
    with FileSystems.open(path) as stream:
        return json.loads(stream.read())


class CountsToFile(beam.PTransform):
    """Sums (key, n) pairs into one JSON file of [[key, total], ...]; read it back with `read_counts`."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, pairs):
        return (
            pairs
            | "Sum" >> beam.CombinePerKey(sum)
            | "Gather" >> beam.combiners.ToList()
            | "To JSON" >> beam.Map(lambda totals: json.dumps(sorted([list(k), n] for k, n in totals)))
            | "Write" >> beam.io.WriteToText(self.path, shard_name_template="")
        )


def scratch_path(root: str, name: str) -> str:
    """A unique file name under `root` for a pipeline's side result, deleted by the caller after reading."""
    return posixpath.join(root, f".{name}-{uuid.uuid4().hex}.json")


def read_counts(path: str) -> dict[tuple, int]:
    """The totals written by `CountsToFile`, then the file is deleted."""
    with FileSystems.open(path) as stream:
        text = stream.read().decode().strip()
    FileSystems.delete([path])
    return {tuple(key): n for key, n in json.loads(text or "[]")}
