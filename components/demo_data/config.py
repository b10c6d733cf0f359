"""The demo dataset's config: how many images, their size and captions, and the seed that fixes every byte."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from model.settings import DictConfig, setting


@dataclass(frozen=True)
class DemoDataConfig(DictConfig):
    out: Path = setting(help="folder to write (COCO 2017 layout: annotations/, train2017/, val2017/)")
    train_images: int = setting(2000, help="number of training images")
    val_images: int = setting(200, help="number of validation images")
    image_size: int = setting(128, help="side of the square images in pixels (16-1024)")
    captions_per_image: int = setting(5, help="COCO-style paraphrases per image (1-10)")
    two_shape_fraction: float = setting(0.3, help="fraction of images with two shapes and relational captions (0-1)")
    jpeg_quality: int = setting(95, help="JPEG quality of the written images (1-100)")
    seed: int = setting(0, help="random seed; the same seed and options give byte-identical files")

    def __post_init__(self) -> None:
        problems = []
        if self.train_images < 1 or self.val_images < 1:
            problems.append("train_images and val_images must be at least 1")
        if not 16 <= self.image_size <= 1024:
            problems.append(f"image_size must be in [16, 1024], got {self.image_size}")
        if not 1 <= self.captions_per_image <= 10:
            problems.append(f"captions_per_image must be in [1, 10], got {self.captions_per_image}")
        if not 0.0 <= self.two_shape_fraction <= 1.0:
            problems.append(f"two_shape_fraction must be in [0, 1], got {self.two_shape_fraction}")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if problems:
            raise ValueError("invalid demo data config: " + "; ".join(problems))

    def count(self, split: str) -> int:
        return self.train_images if split == "train" else self.val_images
