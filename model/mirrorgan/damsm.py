"""DAMSM (AttnGAN's deep attentional multimodal similarity model): STEM and an image encoder trained
to agree, word by region and sentence by image. MirrorGAN takes STEM from it; its sentence/image
codes are also what the MirrorGAN paper's R-precision ranks by.

Image encoder (AttnGAN's CNN_ENCODER): a frozen Inception-v3 trunk; the regions are Mixed_6e's map
(768 channels, 17 x 17 at 299 px) through a 1x1 conv, the image code Mixed_7c average-pooled (2048)
through a linear layer, both to STEM's width; the two layers start U(-0.1, 0.1). Offline the trunk
is the TF FID Inception TorchScript (the same architecture, called here layer by layer: `mixed_7`
is Mixed_6e, `mixed_10` Mixed_7c). That network is also the FID extractor, so it runs without
gradients only: DAMSM pretraining caches its features and never trains it, and it is never in
the generator's gradient path (MirrorGAN's generator loss does not use DAMSM's image side).

A DAMSM folder: damsm.json (config, vocabulary size), vocabulary.json, text_encoder.safetensors
(STEM), image_encoder.safetensors (the two learned layers).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors.torch import load_model, save_model
from torch import nn

from .config import DAMSMConfig
from .stem import STEM, STEMTextEncoder
from .vocabulary import Vocabulary

DAMSM_CONFIG = "damsm.json"
IMAGE_WEIGHTS = "image_encoder.safetensors"
REGION_LAYER, LAST_LAYER = "mixed_7", "mixed_10"  # Mixed_6e, Mixed_7c of the TF Inception
REGION_CHANNELS, GLOBAL_CHANNELS = 768, 2048


class InceptionTrunk(nn.Module):
    """The frozen trunk: images (b, 3, H, W) in [-1, 1] -> regions (b, 768, r, r), pooled (b, 2048).

    Images are resized bilinearly to `image_size` (the authors' nn.Upsample to 299); the TF
    Inception takes [-1, 1] pixels, as AttnGAN feeds its Inception the generator's range."""

    def __init__(self, torchscript_path: str | Path, *, image_size: int):
        super().__init__()
        with warnings.catch_warnings():  # torch 2.14 deprecates TorchScript loading; the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            network = torch.jit.load(str(torchscript_path), map_location="cpu").eval()
        self.layers = nn.ModuleDict(
            (name, layer) for name, layer in network.net.layers.named_children() if name != "pool2"
        )
        self.image_size = image_size
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionTrunk:
        return super().train(False)  # frozen: batch-norm statistics stay ImageNet's

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(images.float(), size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        regions = None
        for name, layer in self.layers.items():
            x = layer(x)
            if name == REGION_LAYER:
                regions = x
        return regions, x.mean((2, 3))  # the authors' 8x8 average pool, for any input size


class DAMSMImageEncoder(nn.Module):
    """The learned layers: (regions (b, 768, r, r), pooled (b, 2048)) -> (regions (b, r², d), image code (b, d))."""

    def __init__(self, text_dim: int):
        super().__init__()
        self.regions = nn.Conv2d(REGION_CHANNELS, text_dim, 1, bias=False)
        self.code = nn.Linear(GLOBAL_CHANNELS, text_dim)
        nn.init.uniform_(self.regions.weight, -0.1, 0.1)
        nn.init.uniform_(self.code.weight, -0.1, 0.1)

    def forward(self, regions: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rearrange(self.regions(regions.float()), "b d h w -> b (h w) d"), self.code(pooled.float())


class DAMSM(nn.Module):
    """STEM, the vocabulary and the image encoder's learned layers (the trunk is loaded beside it)."""

    def __init__(self, config: DAMSMConfig, vocabulary: Vocabulary):
        super().__init__()
        self.config, self.vocabulary = config, vocabulary
        self.stem = STEM(vocab_size=len(vocabulary), config=config)
        self.image_encoder = DAMSMImageEncoder(config.text_dim)

    def text_encoder(self) -> STEMTextEncoder:
        """STEM frozen behind its vocabulary (for MirrorGAN's generator, the server, the DAMSM score)."""
        return STEMTextEncoder(self.stem, self.vocabulary)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.vocabulary.save(directory)
        self.stem.save(directory)
        save_model(self.image_encoder, str(directory / IMAGE_WEIGHTS), metadata={"format": "pt"})
        meta = {"config": self.config.to_dict(), "vocab_size": len(self.vocabulary)}
        (directory / DAMSM_CONFIG).write_text(json.dumps(meta, indent=1))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> DAMSM:
        """A pretrained DAMSM, frozen and in eval mode."""
        directory = Path(directory)
        if not (directory / DAMSM_CONFIG).is_file():
            raise FileNotFoundError(f"no {DAMSM_CONFIG} in {directory}: not a pretrained DAMSM folder")
        meta = json.loads((directory / DAMSM_CONFIG).read_text())
        damsm = cls(DAMSMConfig.from_dict(meta["config"]), Vocabulary.load(directory))
        if len(damsm.vocabulary) != meta["vocab_size"]:
            raise ValueError(f"{directory}: vocabulary.json holds {len(damsm.vocabulary)} ids, damsm.json says {meta}")
        damsm.stem = STEM.load(directory, vocab_size=meta["vocab_size"], config=damsm.config)
        load_model(damsm.image_encoder, str(directory / IMAGE_WEIGHTS), strict=True, device=str(device))
        return damsm.to(device).eval().requires_grad_(False)
