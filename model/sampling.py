"""Text to image with a trained generator: the object that evaluation and serving load.

Model folder format (written by training, registered in MLflow, read by evaluation and serving):

    <model_dir>/config.json
        {
          "architecture": "xmcgan"  (MirrorGAN folders: model/mirrorgan/sampling.py)
          "model":        ModelConfig.to_dict()                       (model/config.py)
          "text_encoder": {"name": hub name or path, "max_length": tokens}
          "provenance":   free dict: run id, data version, code version, images seen...
        }
    <model_dir>/generator.safetensors    the generator's weights (the EMA copy after training)
                                         and batch-norm running statistics

`Generator.from_pretrained(model_dir)` reads the same folder without the text encoder.

Reproducibility: image k of a prompt under a seed has noise z drawn from its own random stream,
seeded by (seed, k), and is generated alone; so the same (prompt, seed, k) gives the same
pixels whatever else is in the request. `generate` runs a whole batch at once, for callers that
want throughput and bring their own embeddings and noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .generator import Generator
from .pretrained import read_folder_config, write_folder_config
from .text_encoder import TextEmbedding, TextEncoder


def image_noise(*, seed: int, index: int, z_dim: int) -> torch.Tensor:
    """z (z_dim,) for image `index` of a prompt under `seed`: its own stream, seeded by (seed, index)."""
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    state = int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(state))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, 3, H, W) in [-1, 1] -> (n, H, W, 3) uint8."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_model_folder(
    model_dir: str | Path, *, generator: Generator, text_encoder: dict, provenance: dict | None = None
) -> Path:
    """Write the folder format above from a generator (usually the EMA copy) and its encoder's
    {"name", "max_length"}, without loading the encoder."""
    if not (isinstance(text_encoder.get("name"), str) and isinstance(text_encoder.get("max_length"), int)):
        raise ValueError(f"text_encoder must be {{'name': str, 'max_length': int}}, got {text_encoder!r}")
    model_dir = Path(model_dir)
    generator.save_pretrained(model_dir)
    entries = {"text_encoder": {"name": text_encoder["name"], "max_length": text_encoder["max_length"]}}
    write_folder_config(model_dir, architecture="xmcgan", **entries, provenance=dict(provenance or {}))
    return model_dir


class TextToImage:
    """A frozen text encoder and a generator: prompts in, uint8 images out."""

    def __init__(self, *, text_encoder: TextEncoder, generator: Generator, provenance: dict | None = None):
        if text_encoder.dim != generator.config.text_dim:
            raise ValueError(
                f"text encoder {text_encoder.name!r} gives width {text_encoder.dim}, "
                f"the generator was built for text_dim {generator.config.text_dim}"
            )
        self.text_encoder = text_encoder
        self.generator = generator.eval().requires_grad_(False)
        self.provenance = dict(provenance or {})

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu") -> TextToImage:
        """The model folder's pipeline, of the architecture its config.json records (XMC-GAN when it records none)."""
        values = read_folder_config(model_dir)
        architecture = values.get("architecture", "xmcgan")
        if architecture == "mirrorgan":
            from .mirrorgan.sampling import MirrorGANTextToImage

            return MirrorGANTextToImage.from_pretrained(model_dir, device=device)
        if architecture != "xmcgan":
            raise ValueError(f"{Path(model_dir) / 'config.json'}: unknown architecture {architecture!r}")
        encoder = values.get("text_encoder")
        if not isinstance(encoder, dict) or not {"name", "max_length"} <= set(encoder):
            raise ValueError(f"{Path(model_dir) / 'config.json'} needs a 'text_encoder' entry with name and max_length")
        return cls(
            text_encoder=TextEncoder(encoder["name"], max_length=encoder["max_length"]).to(device),
            generator=Generator.from_pretrained(model_dir, device=device),
            provenance=values.get("provenance"),
        )

    def save_pretrained(self, model_dir: str | Path, *, provenance: dict | None = None) -> Path:
        text_encoder = {"name": self.text_encoder.name, "max_length": self.text_encoder.max_length}
        return write_model_folder(
            model_dir, generator=self.generator, text_encoder=text_encoder, provenance=provenance or self.provenance
        )

    def prompt_problem(self, prompt: str) -> str | None:
        """Why the model cannot draw `prompt` (a request error naming it), or None: any text is fine here."""
        return None

    def untrained_copy(self, *, seed: int) -> TextToImage:
        """The same architecture and text encoder with a freshly initialised generator (seeded)."""
        torch.manual_seed(seed)
        return TextToImage(text_encoder=self.text_encoder, generator=Generator(self.generator.config).to(self.device))

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def image_size(self) -> int:
        return self.generator.config.image_size

    @torch.no_grad()
    def generate(self, text: TextEmbedding, z: torch.Tensor) -> torch.Tensor:
        """Images (b, 3, H, W) in [-1, 1] for precomputed embeddings and noise, as one batch."""
        return self.generator(z.to(self.device), text.to(self.device))

    @torch.no_grad()
    def images(self, text: TextEmbedding, noise_keys: Sequence[tuple[int, int]]) -> np.ndarray:
        """uint8 (n, H, W, 3): image i from text row i and the noise of noise_keys[i] = (seed, index),
        as one batch. Sampling, the evaluation and the server all make images through here."""
        z_dim = self.generator.config.z_dim
        z = torch.stack([image_noise(seed=seed, index=index, z_dim=z_dim) for seed, index in noise_keys])
        return to_uint8(self.generate(text, z))

    @torch.no_grad()
    def __call__(self, prompts: list[str], *, seed: int, images_per_prompt: int = 1) -> np.ndarray:
        """uint8 (len(prompts) * images_per_prompt, H, W, 3): prompt-major, image k of prompt p at
        p * images_per_prompt + k."""
        if isinstance(prompts, str) or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError("prompts must be a list of non-empty strings")
        if not (isinstance(images_per_prompt, int) and images_per_prompt >= 1):
            raise ValueError(f"images_per_prompt must be a positive integer, got {images_per_prompt!r}")
        images = []
        for prompt in prompts:  # one at a time: batch composition must not change a pixel
            text = self.text_encoder([prompt])
            images += [self.images(text, [(seed, k)])[0] for k in range(images_per_prompt)]
        size = self.image_size
        return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
