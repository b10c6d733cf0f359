"""R-precision as the XMC-GAN / AttnGAN authors define it, with a pluggable image-text encoder.

For each image, its own caption is ranked among `candidates` captions (itself and
`candidates - 1` captions of other images) by cosine similarity in the encoder's joint space;
R@1 is the fraction of images whose own caption ranks first. The draw of negatives is repeated
and the mean and standard deviation over repeats are reported.

The encoder must have taken no part in GAN training: a transformers CLIP model (by hub name or
local path), or the project's own dual encoder (components.evaluate.dual_encoder). Never the
GAN's discriminator.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .fidelity import state_dict_sha256


class ImageTextEncoder(Protocol):
    """Maps images and texts into one space; outputs are L2-normalised rows."""

    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (n, h, w, 3) -> (n, d)."""

    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """n captions -> (n, d)."""

    def describe(self) -> dict:
        """What identifies the encoder (kind, name, weights hash or version): stored with every score."""


def r_precision(
    image_embeddings: torch.Tensor,
    true_index: np.ndarray,
    pool_embeddings: torch.Tensor,
    negative_mask: np.ndarray,
    *,
    candidates: int = 100,
    repeats: int = 10,
    seed: int = 0,
) -> dict:
    """R@1 of each image's true caption against `candidates - 1` negatives drawn per repeat.

    image_embeddings (n, d) and pool_embeddings (m, d) L2-normalised; true_index (n,) the pool row
    of each image's caption; negative_mask (n, m) which pool rows may serve as negatives for an
    image (captions of other images, not equal to its own). A hit needs the true similarity to
    exceed every negative's: s(i, t_i) > max_j s(i, n_ij).
    """
    n, m = len(image_embeddings), len(pool_embeddings)
    if negative_mask.shape != (n, m) or true_index.shape != (n,):
        raise ValueError(f"shapes disagree: {n} images, pool {m}, mask {negative_mask.shape}, true {true_index.shape}")
    if candidates < 2 or repeats < 1:
        raise ValueError(f"need candidates >= 2 and repeats >= 1, got {candidates} and {repeats}")
    fewest = int(negative_mask.sum(1).min()) if n else 0
    if fewest < candidates - 1:
        raise ValueError(
            f"R-precision with {candidates} candidates needs {candidates - 1} negative captions per image, "
            f"but the caption pool offers only {fewest} for some image; lower the candidates or use a larger split"
        )
    similarity = (image_embeddings @ pool_embeddings.T).numpy()  # (n, m)
    true_score = similarity[np.arange(n), true_index]
    rng = np.random.default_rng(seed)
    per_repeat = []
    for _ in range(repeats):
        keys = np.where(negative_mask, rng.random((n, m)), np.inf)  # valid negatives get random keys, smallest win
        negatives = np.argpartition(keys, candidates - 2, axis=1)[:, : candidates - 1]
        best_negative = np.take_along_axis(similarity, negatives, axis=1).max(1)
        per_repeat.append(float((true_score > best_negative).mean()))
    return {
        "r_precision": float(np.mean(per_repeat)),
        "r_precision_std": float(np.std(per_repeat)),
        "per_repeat": per_repeat,
        "candidates": candidates,
        "repeats": repeats,
    }


def caption_pool(captions_per_image: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """Distinct captions of a split, and for each image which of them belong to it: (texts, owned (n, m) bool)."""
    texts = sorted({c for captions in captions_per_image for c in captions})
    row = {text: j for j, text in enumerate(texts)}
    owned = np.zeros((len(captions_per_image), len(texts)), dtype=bool)
    for i, captions in enumerate(captions_per_image):
        owned[i, [row[c] for c in captions]] = True
    return texts, owned


class CLIPEncoder:
    """A transformers CLIP model (hub name or local folder) with its processor."""

    def __init__(self, name_or_path: str, *, batch_size: int = 32, device: str = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        self.name = name_or_path
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.processor = CLIPProcessor.from_pretrained(name_or_path)
        self.model = CLIPModel.from_pretrained(name_or_path).to(self.device).eval().requires_grad_(False)
        self.weights_sha256 = state_dict_sha256(self.model)

    @torch.no_grad()
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [Image.fromarray(image) for image in images[start : start + self.batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            out.append(self.model.get_image_features(pixel_values=pixels).pooler_output)
        return F.normalize(torch.cat(out).float().cpu(), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        max_length = self.model.config.text_config.max_position_embeddings
        for start in range(0, len(texts), self.batch_size):
            tokens = self.processor(
                text=list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
            features = self.model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).pooler_output
            out.append(features)
        return F.normalize(torch.cat(out).float().cpu(), dim=-1)

    def describe(self) -> dict:
        return {"kind": "clip", "name": self.name, "weights_sha256": self.weights_sha256}


def score_images(
    encoder: ImageTextEncoder,
    images: np.ndarray,
    captions: list[str],
    pool: list[str],
    pool_embeddings: torch.Tensor,
    owned: np.ndarray,
    *,
    candidates: int,
    repeats: int,
    seed: int,
) -> dict:
    """R-precision of images[i] against captions[i]; owned (n, m) marks pool captions of image i's record."""
    row = {text: j for j, text in enumerate(pool)}
    missing = [c for c in captions if c not in row]
    if missing:
        raise ValueError(f"captions not in the caption pool: {missing[:3]}")
    true_index = np.array([row[c] for c in captions])
    negative_mask = ~owned
    negative_mask[np.arange(len(captions)), true_index] = False
    return r_precision(
        encoder.encode_images(images),
        true_index,
        pool_embeddings,
        negative_mask,
        candidates=candidates,
        repeats=repeats,
        seed=seed,
    )
