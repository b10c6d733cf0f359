"""MirrorGAN's discriminators, one per generator stage (the authors' model.py D_NET64/128/256).

    stage 0 (base_size): stride-2 4x4 convs down to 4x4 x 8 df (LeakyReLU 0.2, BN but on the first)
    stage k:             the same to (4 2^k)^2, then k down-blocks (4x4 stride 2, BN, LReLU) to
                         8 df 2^k channels and k 3x3 blocks back down to 8 df
    unconditional logit: conv 4x4 stride 4 of the 4x4 features
    conditional logit:   the same after concat(features, sentence tiled to 4x4) -> 3x3 conv, BN, LReLU

The authors' base 64 gives their 4 first convolutions (df, 2 df, 4 df, 8 df); a smaller base
starts further up that ladder (base 32: 2 df, 4 df, 8 df). Logits are returned before the
sigmoid: the losses use BCE-with-logits, the numerically safe form of the authors' sigmoid + BCE.
The network holds no loss logic (model/mirrorgan/losses.py).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from einops import repeat
from torch import nn

from ..config import MirrorGANConfig
from ..pretrained import PretrainedMixin
from .glam import init_weights


def leaky(channels: int, *, kernel: int, stride: int, padding: int, in_channels: int, norm: bool = True):
    layers = [nn.Conv2d(in_channels, channels, kernel, stride, padding, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Logits(nn.Module):
    """D_GET_LOGITS: a 4x4 map of 8 df channels -> one logit per image, optionally conditioned on a sentence."""

    def __init__(self, channels: int, text_dim: int | None):
        super().__init__()
        self.joint = None
        if text_dim is not None:
            self.joint = nn.Sequential(*leaky(channels, kernel=3, stride=1, padding=1, in_channels=channels + text_dim))
        self.out = nn.Conv2d(channels, 1, kernel_size=4, stride=4)

    def forward(self, features: torch.Tensor, sentence: torch.Tensor | None = None) -> torch.Tensor:
        if self.joint is not None:
            features = self.joint(torch.cat([features, repeat(sentence, "b d -> b d 4 4")], dim=1))
        return self.out(features).flatten()


class StageDiscriminator(nn.Module):
    """forward(images (b, 3, S, S)) -> features (b, 8 df, 4, 4); `unconditional` and `conditional` give logits."""

    def __init__(self, config: MirrorGANConfig, stage: int):
        super().__init__()
        df, text_dim = config.d_base, config.require_text_dim()
        convs = (config.base_size // 4).bit_length() - 1
        widths = [8 * df // 2 ** (convs - 1 - i) for i in range(convs)]  # ..., 2 df, 4 df, 8 df
        layers = leaky(widths[0], kernel=4, stride=2, padding=1, in_channels=3, norm=False)
        for c_in, c_out in pairwise(widths):
            layers += leaky(c_out, kernel=4, stride=2, padding=1, in_channels=c_in)
        for k in range(stage):
            layers += leaky(8 * df * 2 ** (k + 1), kernel=4, stride=2, padding=1, in_channels=8 * df * 2**k)
        for k in range(stage, 0, -1):
            layers += leaky(8 * df * 2 ** (k - 1), kernel=3, stride=1, padding=1, in_channels=8 * df * 2**k)
        self.encode = nn.Sequential(*layers)
        self.size = config.stage_sizes[stage]
        self.unconditional = Logits(8 * df, None)
        self.conditional = Logits(8 * df, text_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, self.size, self.size):
            size = self.size
            raise ValueError(f"stage discriminator needs images (b, 3, {size}, {size}), got {tuple(images.shape)}")
        return self.encode(images)


class MirrorGANDiscriminator(PretrainedMixin, nn.Module):
    """The per-stage discriminators as one module (one optimiser: Adam is per parameter, so one over
    all of them steps each exactly as the authors' one optimiser per discriminator)."""

    weights_name = "discriminator.safetensors"
    config_class = MirrorGANConfig

    def __init__(self, config: MirrorGANConfig):
        super().__init__()
        self.config = config
        self.stages = nn.ModuleList(StageDiscriminator(config, stage) for stage in range(config.stages))
        init_weights(self)
