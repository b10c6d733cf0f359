"""The XMC-GAN contrastive discriminator (Zhang et al. 2021, Fig. 4), as in the authors' Flax
code (xmcgan/nets/xmc_net.py): residual down-sampling blocks, spectral norm on every layer.

    x [+ (y, x) coordinate channels] -> input block -> down-blocks -> ... -> 4x4 block -> ReLU
      -> sum over positions: f (b, C)
    region features: 1x1 conv of the block output at region_size to the text width (b, R, d)
    sentence features: e = W s (b, C)
    logit = w·f + <f, e>                           (projection discriminator)

f and e also serve the image-sentence contrastive loss and f the image-image loss, region
features the region-word loss (model/losses.py); the network itself holds no loss logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .config import ModelConfig
from .layers import coordinate_channels, init_glorot
from .pretrained import PretrainedMixin


def sn(layer: nn.Module) -> nn.Module:
    """Glorot-initialised layer under spectral normalisation (one power iteration per training forward)."""
    return spectral_norm(init_glorot(layer))


class DiscBlock(nn.Module):
    """(ReLU, conv3x3, ReLU, conv3x3, [avg-pool]) + [conv1x1, avg-pool]; the first block of the
    network (`first`) has no leading ReLU and pools before its shortcut projection."""

    def __init__(self, in_channels: int, out_channels: int, *, downsample: bool, first: bool = False):
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = sn(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.conv2 = sn(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        needs_projection = first or downsample or in_channels != out_channels
        self.skip = sn(nn.Conv2d(in_channels, out_channels, 1)) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.first:
            return F.avg_pool2d(h, 2) + self.skip(F.avg_pool2d(x, 2))
        shortcut = self.skip(x)
        if self.downsample:
            h, shortcut = F.avg_pool2d(h, 2), F.avg_pool2d(shortcut, 2)
        return h + shortcut


@dataclass
class DiscriminatorOutput:
    logits: torch.Tensor  # (b,) real/fake score
    image_features: torch.Tensor  # (b, C) pooled features f
    sentence_features: torch.Tensor  # (b, C) projected sentence e
    region_features: torch.Tensor  # (b, R, text_dim) at region_size x region_size

    def split(self, size: int) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """The first `size` rows and the rest (real and fake of a concatenated batch)."""
        head = DiscriminatorOutput(*(t[:size] for t in self._tensors()))
        tail = DiscriminatorOutput(*(t[size:] for t in self._tensors()))
        return head, tail

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.logits, self.image_features, self.sentence_features, self.region_features


class Discriminator(PretrainedMixin, nn.Module):
    """forward(images (b, 3, H, W) in [-1, 1], sentence (b, text_dim)) -> DiscriminatorOutput."""

    weights_name = "discriminator.safetensors"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        text_dim = config.require_text_dim()
        widths = [config.d_base * c for c in config.d_channels]
        blocks = [DiscBlock(3 + 2 * config.d_coordinates, widths[0], downsample=True, first=True)]
        blocks += [DiscBlock(c_in, c_out, downsample=True) for c_in, c_out in pairwise(widths[:-1])]
        blocks.append(DiscBlock(widths[-2], widths[-1], downsample=False))
        self.blocks = nn.ModuleList(blocks)
        # Region features come from the block whose output has region_size pixels a side.
        self.region_block = next(
            i for i in range(len(blocks)) if config.image_size // 2 ** (i + 1) == config.region_size
        )
        self.to_regions = sn(nn.Conv2d(widths[self.region_block], text_dim, 1))
        self.to_logit = sn(nn.Linear(widths[-1], 1))
        self.sentence_proj = sn(nn.Linear(text_dim, widths[-1]))
        self.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU

    def forward(self, images: torch.Tensor, sentence: torch.Tensor) -> DiscriminatorOutput:
        size = self.config.image_size
        if (
            images.ndim != 4
            or images.shape[1:] != (3, size, size)
            or sentence.shape != (len(images), self.config.text_dim)
        ):
            raise ValueError(
                f"Discriminator inputs: images must be (b, 3, {size}, {size}) and sentence "
                f"(b, {self.config.text_dim}), got {tuple(images.shape)} and {tuple(sentence.shape)}"
            )
        x = images
        if self.config.d_coordinates:
            x = torch.cat([x, coordinate_channels(images)], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.region_block:
                regions = rearrange(self.to_regions(x), "b d h w -> b (h w) d")
        features = F.relu(x).sum((2, 3))
        sentence_features = self.sentence_proj(sentence)
        logits = self.to_logit(features).squeeze(1) + (features * sentence_features).sum(1)
        return DiscriminatorOutput(logits, features, sentence_features, regions)
