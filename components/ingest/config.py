"""The ingest configuration: one validated object from params.yaml, the CLI or a caller."""

from __future__ import annotations

import os
from dataclasses import dataclass

from model.data import SOURCES
from model.settings import DictConfig, setting

from ..beam_io import LOCAL_MODES, LOCAL_RUNNERS
from .annotations import DEFAULT_IMAGE_DIRS
from .images import RESIZE_MODES, ImageSettings


def absolute(path: str) -> str:
    """Local paths made absolute (Beam workers may run elsewhere); URLs (gs://, s3://) kept as they are."""
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


MIN_SHARD_BYTES = 1 << 10
REMOTE_COCO_PARTS = 32  # a COCO file's parts on cluster runners: its image work spread over up to 32 workers


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
class IngestConfig(DictConfig):
    input_root: str = setting(help="folder (or gs://, s3:// URL) holding annotations/ and the image folders")
    output_root: str = setting(help="where records/, dead_letter/ and counts/ are written")
    sources: tuple[str, ...] = setting(("coco", "ln_coco"), help="sources to read: coco, ln_coco, ln_open_images")
    image_size: int = setting(128, help="side of the square output images in pixels")
    resize: str = setting(
        "stretch", help="stretch (bilinear, whole image, as the authors) or center_crop (keeps the aspect ratio)"
    )
    min_image_side: int = setting(32, help="images with a smaller side are rejected")
    max_image_pixels: int = setting(89_478_485, help="images declaring more pixels are rejected as decompression bombs")
    max_caption_chars: int = setting(2000, help="longer captions are rejected")
    coco_year: int | None = setting(None, help="2014 or 2017 when both COCO caption years are present")
    image_dirs: dict[str, str] = setting(
        factory=dict, help="image folder per source relative to the input root, with {split} and {year}"
    )
    shard_bytes: int = setting(
        64 << 20, help="target bytes per Parquet file: the number of files per source and split follows the data's size"
    )
    runner: str = setting(
        "DirectRunner", help="Beam runner (DirectRunner, FnApiRunner, DataflowRunner, FlinkRunner, ...)"
    )
    local_workers: int = setting(
        2, help="workers of the local runners (DirectRunner, FnApiRunner; other runners ignore it)"
    )
    local_mode: str = setting("threads", help="threads or processes: how the local runners run their workers")
    coco_parts: int = setting(
        0,
        help="parts a COCO file's images are split into, one worker each; every part streams the file's annotations"
        f" (0: local_workers on the local runners, {REMOTE_COCO_PARTS} on others)",
    )
    beam_args: tuple[str, ...] = setting((), help="more Beam pipeline options, as a YAML list")

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
        if self.coco_parts < 0:
            problems.append(f"coco_parts must be at least 0 (0: chosen by the runner), got {self.coco_parts}")
        problems.extend(beam_problems(self))
        if problems:
            raise ValueError("invalid ingest config: " + "; ".join(problems))

    @property
    def coco_file_parts(self) -> int:
        """How many parts each COCO file is parsed in: coco_parts, or the runner's choice."""
        if self.coco_parts:
            return self.coco_parts
        return self.local_workers if self.runner in LOCAL_RUNNERS else REMOTE_COCO_PARTS

    @property
    def image_settings(self) -> ImageSettings:
        return ImageSettings(
            size=self.image_size,
            resize=self.resize,
            min_side=self.min_image_side,
            max_pixels=self.max_image_pixels,
        )
