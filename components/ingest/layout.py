"""Where ingest's outputs live beside model/data.py's records/: one folder or file per source, so that
per-source runs (one DVC stage each) write disjoint outputs. Paths are text: roots may be URLs."""

from __future__ import annotations

import posixpath

from model.data import records_dir


def source_records_dir(root: str, source: str) -> str:
    return posixpath.dirname(records_dir(root, source, "train"))


def dead_letter_dir(root: str, source: str) -> str:
    return posixpath.join(root, "dead_letter", source)


def dead_letter_file(root: str, source: str) -> str:
    return posixpath.join(dead_letter_dir(root, source), "part-00000-of-00001.jsonl")


def counts_path(root: str, source: str) -> str:
    return posixpath.join(root, "counts", f"{source}.json")
