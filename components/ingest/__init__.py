"""Ingest (Apache Beam): COCO captions JSON and Localized Narratives JSONL + images -> Parquet records."""

from .config import IngestConfig
from .run import run_ingest

__all__ = ["IngestConfig", "run_ingest"]
