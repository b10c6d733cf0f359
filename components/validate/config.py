"""The validation configuration: thresholds from params.yaml (section `validate`), the CLI or a caller."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from model.data import SOURCES, SPLITS
from model.settings import DictConfig, setting

from ..ingest.config import absolute

DEFAULT_CAPTIONS_PER_IMAGE = {"coco": (1, 7), "ln_coco": (1, 10), "ln_open_images": (1, 10)}  # COCO has 5-7


@dataclass(frozen=True)
class ValidateConfig(DictConfig):
    data_root: str = setting(help="ingest's output root (records/, counts/, embeddings/)")
    report_dir: str = setting("", help="where validation.json and validation.html go (default: <data-root>/validation)")
    sources: tuple[str, ...] = setting(("coco", "ln_coco"), help="sources to check")
    image_size: int | None = setting(None, help="expected image side in pixels (default: the size ingest recorded)")
    min_caption_chars: int = setting(3, help="shortest caption allowed")
    max_caption_chars: int = setting(2000, help="longest caption allowed")
    captions_per_image: dict[str, tuple[int, int]] = setting(
        factory=dict, help="[min, max] captions per image, per source"
    )
    split_min_images: dict[str, int] = setting(factory=lambda: {"train": 1, "val": 1}, help="least images per split")
    max_dead_letter_fraction: float = setting(0.01, help="largest rejected / input fraction per source, split and unit")
    # sources that must have caption embeddings (True: all of them); embeddings found are checked in any case
    require_embeddings: tuple[str, ...] | bool = setting(
        (), help="sources that must have caption embeddings, as a YAML list"
    )

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
