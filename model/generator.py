"""The XMC-GAN generator with attentional self-modulation (Zhang et al. 2021, Fig. 3).

    c = [W s ; z]                       global condition: projected sentence and noise
    4x4 <- linear(z) [or linear(c), g_sentence_input] [+ (y, x) coordinate channels, g_coordinates]
    residual up-blocks, batch norm modulated by c          4x4 -> ... -> attention_size
    regions = 1x1 conv(x) at attention_size; each region attends over the words: context_r
    C_r = [context_r ; c]                                   the per-region condition
    residual up-blocks, batch norm modulated per region by C (nearest-upsampled)
    -> modulated BN, ReLU, 3x3 conv, tanh                   image in [-1, 1]

Follows the authors' Flax code (xmcgan/nets/xmc_net.py, nets/common.py) layer for layer; the
output is tanh in [-1, 1] where theirs rescales to [0, 1]. The per-region modulation computes
the same numbers as their 1x1 convolutions of the upsampled condition map, in a cheaper order
(model/layers.py SpatialConditionalBatchNorm).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import ModelConfig
from .layers import (
    ConditionalBatchNorm,
    RegionCondition,
    SpatialConditionalBatchNorm,
    coordinate_channels,
    init_glorot,
    word_region_attention,
)
from .pretrained import PretrainedMixin
from .text_encoder import TextEmbedding


class GenBlock(nn.Module):
    """Residual up-sampling block: (norm, ReLU, up, conv3x3, norm, ReLU, conv3x3) + up, conv1x1.

    `norm` builds the conditional batch norm: global (ConditionalBatchNorm) before attention,
    per region (SpatialConditionalBatchNorm) after it.
    """

    def __init__(self, in_channels: int, out_channels: int, norm):
        super().__init__()
        self.norm1 = norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | RegionCondition) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, cond)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(PretrainedMixin, nn.Module):
    """forward(z (b, z_dim), text: TextEmbedding) -> images (b, 3, H, W) in [-1, 1]."""

    weights_name = "generator.safetensors"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        text_dim = config.require_text_dim()
        widths = [config.g_base * c for c in config.g_channels]
        norm = dict(momentum=config.bn_momentum, eps=config.bn_eps, sync=config.sync_batch_stats)
        cond_dim = 2 * config.z_dim
        global_blocks = int(math.log2(config.attention_size // 4))

        # Block i takes 2^(i+2) to 2^(i+3) pixels: in = out of block i-1 (the 4x4 input for i = 0).
        pairs = list(zip([widths[0] + 2 * config.g_coordinates, *widths[:-1]], widths, strict=True))
        self.sentence_proj = nn.Linear(text_dim, config.z_dim)
        self.fc = nn.Linear(cond_dim if config.g_sentence_input else config.z_dim, widths[0] * 4 * 4)
        self.global_blocks = nn.ModuleList(
            GenBlock(c_in, c_out, lambda c: ConditionalBatchNorm(c, cond_dim, **norm))
            for c_in, c_out in pairs[:global_blocks]
        )
        self.to_regions = nn.Conv2d(widths[global_blocks - 1], text_dim, 1)
        self.spatial_blocks = nn.ModuleList(
            GenBlock(c_in, c_out, lambda c: SpatialConditionalBatchNorm(c, text_dim, cond_dim, **norm))
            for c_in, c_out in pairs[global_blocks:]
        )
        self.out_norm = SpatialConditionalBatchNorm(widths[-1], text_dim, cond_dim, **norm)
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        init_glorot(self)
        self.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN) and GPU

    def forward(self, z: torch.Tensor, text: TextEmbedding) -> torch.Tensor:
        self._check_inputs(z, text)
        cond = torch.cat([self.sentence_proj(text.sentence), z], dim=-1)
        x = rearrange(self.fc(cond if self.config.g_sentence_input else z), "b (c h w) -> b c h w", h=4, w=4)
        if self.config.g_coordinates:  # where each of the 4x4 cells is, for text to place things by
            x = torch.cat([x, coordinate_channels(x)], dim=1)
        x = x.contiguous(memory_format=torch.channels_last)
        for block in self.global_blocks:
            x = block(x, cond)
        regions = rearrange(self.to_regions(x), "b d h w -> b (h w) d")
        attention, words = word_region_attention(regions, text.words, text.mask, gamma=self.config.attention_gamma)
        region_cond = RegionCondition(attention, words, cond, size=x.shape[-1])
        for block in self.spatial_blocks:
            x = block(x, region_cond)
        return torch.tanh(self.to_rgb(F.relu(self.out_norm(x, region_cond))))

    def _check_inputs(self, z: torch.Tensor, text: TextEmbedding) -> None:
        text_dim = self.config.text_dim
        problems = []
        if z.ndim != 2 or z.shape[1] != self.config.z_dim:
            problems.append(f"z must be (batch, {self.config.z_dim}), got {tuple(z.shape)}")
        if text.words.ndim != 3 or text.words.shape[-1] != text_dim:
            problems.append(f"text.words must be (batch, tokens, {text_dim}), got {tuple(text.words.shape)}")
        if text.sentence.shape != (len(z), text_dim):
            problems.append(f"text.sentence must be ({len(z)}, {text_dim}), got {tuple(text.sentence.shape)}")
        if text.mask.shape != text.words.shape[:2] or text.mask.dtype != torch.bool:
            problems.append(
                f"text.mask must be bool {tuple(text.words.shape[:2])}, got {text.mask.dtype} {tuple(text.mask.shape)}"
            )
        if problems:
            raise ValueError("Generator inputs: " + "; ".join(problems))
