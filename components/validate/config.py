"""The validation configuration: thresholds from params.yaml (section `validate`), the CLI or a caller."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, fields

from model.data import SOURCES, SPLITS

from ..ingest.config import absolute

DEFAULT_CAPTIONS_PER_IMAGE = {"coco": (1, 7), "ln_coco": (1, 10), "ln_open_images": (1, 10)}  # COCO has 5-7


@dataclass(frozen=True)
class ValidateConfig:
    data_root: str  # ingest's output root: records/, counts/, embeddings/
    report_dir: str = ""  # validation.json and validation.html; default <data_root>/validation
    sources: tuple[str, ...] = ("coco", "ln_coco")
    image_size: int | None = None  # expected side of every image; None: the size ingest recorded in counts/
    min_caption_chars: int = 3
    max_caption_chars: int = 2000
    captions_per_image: dict[str, tuple[int, int]] = field(default_factory=dict)  # per source, over the defaults
    split_min_images: dict[str, int] = field(default_factory=lambda: {"train": 1, "val": 1})
    max_dead_letter_fraction: float = 0.01  # rejected / in, per source, split and unit (files, annotations, images)
    # sources that must have caption embeddings (True: all of them); embeddings found are checked in any case
    require_embeddings: tuple[str, ...] | bool = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "data_root", absolute(str(self.data_root)))
        set_(self, "report_dir", absolute(str(self.report_dir or posixpath.join(self.data_root, "validation"))))
        set_(self, "sources", tuple(self.sources))
        required = self.require_embeddings
        set_(
            self,
            "require_embeddings",
            tuple(self.sources if required is True else () if required is False else required),
        )
        bounds = {**DEFAULT_CAPTIONS_PER_IMAGE, **dict(self.captions_per_image)}
        set_(self, "captions_per_image", {s: tuple(b) for s, b in bounds.items()})
        set_(self, "split_min_images", {split: 1 for split in SPLITS} | dict(self.split_min_images))
        problems = []
        if unknown := [s for s in self.sources if s not in SOURCES]:
            problems.append(f"unknown sources {unknown} (known: {list(SOURCES)})")
        if not self.sources:
            problems.append("sources must not be empty")
        if unchecked := [s for s in self.require_embeddings if s not in self.sources]:
            problems.append(f"require_embeddings names sources not validated: {unchecked}")
        if self.image_size is not None and self.image_size < 1:
            problems.append(f"image_size must be positive, got {self.image_size}")
        if not 0 <= self.min_caption_chars <= self.max_caption_chars:
            problems.append(f"need 0 <= min_caption_chars <= max_caption_chars, got {self.min_caption_chars}, "
                            f"{self.max_caption_chars}")  # fmt: skip
        for source, bound in self.captions_per_image.items():
            if source not in SOURCES or len(bound) != 2 or not 0 <= bound[0] <= bound[1]:
                problems.append(f"captions_per_image[{source!r}] must be [min, max] with 0 <= min <= max, got {bound}")
        if unknown := set(self.split_min_images) - set(SPLITS):
            problems.append(f"split_min_images names unknown splits {sorted(unknown)}")
        if not 0.0 <= self.max_dead_letter_fraction <= 1.0:
            problems.append(f"max_dead_letter_fraction must be in [0, 1], got {self.max_dead_letter_fraction}")
        if problems:
            raise ValueError("invalid validate config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> ValidateConfig:
        if unknown := set(values) - {f.name for f in fields(cls)}:
            raise ValueError(f"unknown validate options {sorted(unknown)}")
        return cls(**values)
