"""The ingest configuration: one validated object from params.yaml, the CLI or a caller."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from model.data import SOURCES

from ..beam_io import LOCAL_MODES
from .annotations import DEFAULT_IMAGE_DIRS
from .images import RESIZE_MODES, ImageSettings


def absolute(path: str) -> str:
    """Local paths made absolute (Beam workers may run elsewhere); URLs (gs://, s3://) kept as they are."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


MIN_SHARD_BYTES = 1 << 10


def beam_problems(config) -> list[str]:
    """What is wrong with the Beam settings ingest and embed share (shard_bytes, local_workers, local_mode)."""
    problems = []
    if config.shard_bytes < MIN_SHARD_BYTES:
        problems.append(f"shard_bytes must be at least {MIN_SHARD_BYTES}, got {config.shard_bytes}")
    if config.local_workers < 1:
        problems.append(f"local_workers must be at least 1, got {config.local_workers}")
    if config.local_mode not in LOCAL_MODES:
        problems.append(f"local_mode must be one of {list(LOCAL_MODES)}, got {config.local_mode!r}")
    return problems


@dataclass(frozen=True)
class IngestConfig:
    input_root: str  # holds annotations/ and the image folders, local or any Beam filesystem
    output_root: str  # records/, dead_letter/, counts/ are written under it
    sources: tuple[str, ...] = ("coco", "ln_coco")
    image_size: int = 128
    resize: str = "stretch"  # the authors' bilinear resize of the whole image; "center_crop" keeps the aspect
    min_image_side: int = 32
    max_image_pixels: int = 89_478_485
    max_caption_chars: int = 2000
    coco_year: int | None = None  # 2014 or 2017; None: the one year present under annotations/
    image_dirs: dict[str, str] = field(default_factory=dict)  # per source, overrides DEFAULT_IMAGE_DIRS
    shard_bytes: int = 64 << 20  # target bytes of a Parquet file: a folder gets as many as its records need
    runner: str = "DirectRunner"
    local_workers: int = 2  # workers of the local runners (DirectRunner, FnApiRunner); others ignore it
    local_mode: str = "threads"  # or "processes" (components/beam_io.py: why threads are safe)
    beam_args: tuple[str, ...] = ()  # passed to Beam's PipelineOptions, e.g. ("--project=...",)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "input_root", absolute(str(self.input_root)))
        set_(self, "output_root", absolute(str(self.output_root)))
        set_(self, "sources", tuple(self.sources))
        set_(self, "beam_args", tuple(self.beam_args))
        set_(self, "image_dirs", dict(self.image_dirs))
        problems = []
        if unknown := [s for s in self.sources if s not in SOURCES]:
            problems.append(f"unknown sources {unknown} (known: {list(SOURCES)})")
        if not self.sources or len(set(self.sources)) != len(self.sources):
            problems.append(f"sources must be a non-empty list without repeats, got {list(self.sources)}")
        if unknown := set(self.image_dirs) - set(DEFAULT_IMAGE_DIRS):
            problems.append(f"image_dirs names unknown sources {sorted(unknown)}")
        if not 8 <= self.image_size <= 4096:
            problems.append(f"image_size must be in [8, 4096], got {self.image_size}")
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize must be one of {list(RESIZE_MODES)}, got {self.resize!r}")
        if self.min_image_side < 1:
            problems.append(f"min_image_side must be at least 1, got {self.min_image_side}")
        if self.max_image_pixels < self.min_image_side**2:
            problems.append(f"max_image_pixels={self.max_image_pixels} is below min_image_side squared")
        if self.max_caption_chars < 1:
            problems.append(f"max_caption_chars must be at least 1, got {self.max_caption_chars}")
        if self.coco_year not in (None, 2014, 2017):
            problems.append(f"coco_year must be 2014, 2017 or null, got {self.coco_year}")
        problems.extend(beam_problems(self))
        if problems:
            raise ValueError("invalid ingest config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> IngestConfig:
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown ingest options {sorted(unknown)}")
        return cls(**values)

    @property
    def image_settings(self) -> ImageSettings:
        return ImageSettings(
            size=self.image_size,
            resize=self.resize,
            min_side=self.min_image_side,
            max_pixels=self.max_image_pixels,
        )
