"""MirrorGAN text to image: the STEM text encoder (with its vocabulary) and the GLAM generator.

Model folder format (training writes it; `model.sampling.TextToImage.from_pretrained` reads the
architecture from config.json and loads either family):

    <model_dir>/config.json
        {
          "architecture": "mirrorgan",
          "model":        MirrorGANConfig.to_dict()
          "text_encoder": {"kind": "stem", "damsm": DAMSMConfig.to_dict(), "vocab_size": ids}
          "provenance":   run id, data version, pretrained DAMSM / STREAM versions, images seen...
        }
    <model_dir>/generator.safetensors      GLAM with conditioning augmentation (the EMA copy)
    <model_dir>/text_encoder.safetensors   STEM
    <model_dir>/vocabulary.json

Images are the last stage's; the noise of image k of a prompt under a seed is model.sampling's
(z and CA's epsilon from one stream), so the same (prompt, seed, k) gives the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..pretrained import read_folder_config, write_folder_config
from ..sampling import TextToImage
from .config import DAMSMConfig
from .glam import MirrorGANGenerator
from .stem import STEM, STEMTextEncoder
from .vocabulary import Vocabulary

ARCHITECTURE = "mirrorgan"


def write_mirrorgan_folder(
    model_dir: str | Path, *, generator: MirrorGANGenerator, text_encoder: STEMTextEncoder, provenance: dict | None
) -> Path:
    """Write the folder format above from a generator (usually the EMA copy) and its STEM encoder."""
    model_dir = Path(model_dir)
    generator.save_pretrained(model_dir)
    text_encoder.stem.save(model_dir)
    text_encoder.vocabulary.save(model_dir)
    entries = {
        "kind": "stem",
        "damsm": text_encoder.stem.config.to_dict(),
        "vocab_size": len(text_encoder.vocabulary),
    }
    write_folder_config(model_dir, architecture=ARCHITECTURE, text_encoder=entries, provenance=dict(provenance or {}))
    return model_dir


class MirrorGANTextToImage(TextToImage):
    """A frozen STEM and a GLAM generator: prompts in, uint8 images out (TextToImage's interface)."""

    architecture = ARCHITECTURE

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, device: str | torch.device = "cpu") -> MirrorGANTextToImage:
        values = read_folder_config(model_dir)
        encoder = values.get("text_encoder") or {}
        if values.get("architecture") != ARCHITECTURE or encoder.get("kind") != "stem":
            raise ValueError(f"{Path(model_dir) / 'config.json'} is not a MirrorGAN model folder")
        vocabulary = Vocabulary.load(model_dir)
        stem = STEM.load(
            model_dir, vocab_size=encoder["vocab_size"], config=DAMSMConfig.from_dict(encoder["damsm"]), device=device
        )
        return cls(
            text_encoder=STEMTextEncoder(stem, vocabulary),
            generator=MirrorGANGenerator.from_pretrained(model_dir, device=device),
            provenance=values.get("provenance"),
        )

    def save_pretrained(self, model_dir: str | Path, *, provenance: dict | None = None) -> Path:
        provenance = provenance or self.provenance
        return write_mirrorgan_folder(
            model_dir, generator=self.generator, text_encoder=self.text_encoder, provenance=provenance
        )

    def prompt_problem(self, prompt: str) -> str | None:
        if self.text_encoder.known_words(prompt):
            return None
        return f"no word of the prompt is in the model's vocabulary ({len(self.text_encoder.vocabulary) - 1} words)"

    def untrained_copy(self, *, seed: int) -> MirrorGANTextToImage:
        torch.manual_seed(seed)
        generator = MirrorGANGenerator(self.generator.config).to(self.device)
        return MirrorGANTextToImage(text_encoder=self.text_encoder, generator=generator)
