"""Building blocks shared by the generator: batch norm (optionally synced across processes),
its conditional variants, and word-region attention; plus the authors' weight initialisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .distributed import all_reduce_sum, world_size

MASKED_LOGIT = -1e9  # added to the logits of padded words, as the authors do


def init_glorot(module: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases for every conv and linear layer (the authors' init)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


class BatchNorm(nn.Module):
    """Batch normalisation without scale and shift (the conditional layers supply them).

    With `sync` on and torch.distributed initialised with more than one process, the batch
    mean and variance are those of the global batch: sums are all-reduced differentiably, so
    gradients equal those of one process normalising the concatenated batch.
    """

    def __init__(self, channels: int, *, momentum: float, eps: float, sync: bool):
        super().__init__()
        self.momentum, self.eps, self.sync = momentum, eps, sync
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (self.sync and world_size() > 1):
            return F.batch_norm(
                x, self.running_mean, self.running_var, None, None, self.training, self.momentum, self.eps
            )
        channels = x.shape[1]
        count = x.new_full((1,), x.numel() // channels)
        sums = all_reduce_sum(torch.cat([x.sum((0, 2, 3)), count]))
        count = sums[-1].detach()
        mean = sums[:channels] / count
        centred = x - mean[:, None, None]
        var = all_reduce_sum(centred.square().sum((0, 2, 3))) / count
        with torch.no_grad():  # running variance is unbiased, as torch's
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * count / (count - 1).clamp_min(1), self.momentum)
        return centred * torch.rsqrt(var + self.eps)[:, None, None]


class ConditionalBatchNorm(nn.Module):
    """x̂ (1 + γ(c)) + β(c) with γ, β linear in a global condition vector c (b, cond_dim)."""

    def __init__(self, channels: int, cond_dim: int, **norm):
        super().__init__()
        self.norm = BatchNorm(channels, **norm)
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gamma(cond)[:, :, None, None]) + self.beta(cond)[:, :, None, None]


class SpatialConditionalBatchNorm(nn.Module):
    """x̂ (1 + γ(c)) + β(c) with γ, β 1x1 convolutions of a condition map c (b, cond_channels, s, s).

    The authors apply the 1x1 convolutions to c nearest-upsampled to x's resolution; a 1x1
    convolution commutes with nearest upsampling, so this computes them at c's resolution and
    upsamples γ and β instead: the same numbers, (x's size / s)^2 times fewer operations.
    """

    def __init__(self, channels: int, cond_channels: int, **norm):
        super().__init__()
        self.norm = BatchNorm(channels, **norm)
        self.gamma = nn.Conv2d(cond_channels, channels, 1)
        self.beta = nn.Conv2d(cond_channels, channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        factor = x.shape[-1] // cond.shape[-1]
        gamma, beta = self.gamma(cond), self.beta(cond)
        if factor > 1:
            gamma = F.interpolate(gamma, scale_factor=factor, mode="nearest")
            beta = F.interpolate(beta, scale_factor=factor, mode="nearest")
        return self.norm(x) * (1 + gamma) + beta


def word_region_attention(
    regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, *, gamma: float
) -> torch.Tensor:
    """Word context of each region: c_r = Σ_t softmax_t(γ cos(r, w_t)) ŵ_t, padded words excluded.

    regions (b, R, d), words (b, T, d), mask (b, T) bool (True: a real token) -> (b, R, d).
    ŵ is the L2-normalised word embedding, as in the authors' attention_for_g.
    """
    regions, words = F.normalize(regions, dim=-1), F.normalize(words, dim=-1)
    logits = gamma * torch.einsum("brd,btd->brt", regions, words)
    logits = logits.masked_fill(~rearrange(mask, "b t -> b 1 t"), MASKED_LOGIT)
    return logits.softmax(-1) @ words
