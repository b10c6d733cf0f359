"""Building blocks shared by the generator: batch norm (optionally synced across processes),
its conditional variants, and word-region attention; plus the authors' weight initialisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .distributed import all_reduce_sum, world_size

MASKED_LOGIT = -1e9  # added to the logits of padded words, as the authors do


def init_glorot(module: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases for every conv and linear layer (the authors' init).

    The spatially conditioned batch norms reset their linears afterwards, as one combined layer:
    modules() lists a parent before its children, so resetting in the same pass would be
    overwritten by the children's own Glorot init."""
    layers = list(module.modules())
    for layer in layers:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    for layer in layers:
        if isinstance(layer, SpatialConditionalBatchNorm):
            layer.reset_parameters()
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


@dataclass
class RegionCondition:
    """The per-region condition of the blocks after attention, C_r = [context_r ; c], kept factored.

    context_r = Σ_t attention[r, t] ŵ_t is the word context of region r (model/generator.py) and
    c the global condition; regions form a size x size grid.
    """

    attention: torch.Tensor  # (b, R, T), rows sum to 1, zero on padded words
    words: torch.Tensor  # (b, T, text_dim), L2-normalised
    global_cond: torch.Tensor  # (b, cond_dim)
    size: int


class SpatialConditionalBatchNorm(nn.Module):
    """x̂ (1 + γ(C_r)) + β(C_r) with γ, β linear in each region's condition C_r = [context_r ; c].

    The authors apply 1x1 convolutions to the (text_dim + cond_dim)-channel map of C, nearest-
    upsampled to x's resolution. Both steps are linear, so the same numbers come cheaper:
        γ_r = W [context_r ; c] + b = Σ_t attention[r, t] (W_w ŵ_t + b) + W_c c
    projects the T words instead of the R regions, then upsamples γ to x's resolution.
    """

    def __init__(self, channels: int, text_dim: int, cond_dim: int, **norm):
        super().__init__()
        self.norm = BatchNorm(channels, **norm)
        self.gamma_words, self.gamma_global = nn.Linear(text_dim, channels), nn.Linear(cond_dim, channels, bias=False)
        self.beta_words, self.beta_global = nn.Linear(text_dim, channels), nn.Linear(cond_dim, channels, bias=False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Glorot-normal as one (text_dim + cond_dim) -> channels layer, as the authors' 1x1 conv."""
        channels, text_dim = self.gamma_words.weight.shape
        std = (2 / (text_dim + self.gamma_global.in_features + channels)) ** 0.5
        for layer in (self.gamma_words, self.gamma_global, self.beta_words, self.beta_global):
            layer.weight.normal_(0, std)
        self.gamma_words.bias.zero_()
        self.beta_words.bias.zero_()

    def forward(self, x: torch.Tensor, cond: RegionCondition) -> torch.Tensor:
        factor = x.shape[-1] // cond.size

        def per_region(words_layer: nn.Linear, global_layer: nn.Linear) -> torch.Tensor:
            values = cond.attention @ words_layer(cond.words) + global_layer(cond.global_cond)[:, None]
            values = rearrange(values, "b (h w) c -> b c h w", h=cond.size)
            return F.interpolate(values, scale_factor=factor, mode="nearest") if factor > 1 else values

        gamma, beta = per_region(self.gamma_words, self.gamma_global), per_region(self.beta_words, self.beta_global)
        return self.norm(x) * (1 + gamma) + beta


def word_region_attention(
    regions: torch.Tensor, words: torch.Tensor, mask: torch.Tensor, *, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of each region over the words: a_rt = softmax_t(γ cos(r, w_t)), padded words excluded.

    regions (b, R, d), words (b, T, d), mask (b, T) bool (True: a real token) -> attention
    (b, R, T) and the L2-normalised words ŵ (b, T, d); a region's word context (the authors'
    attention_for_g) is Σ_t a_rt ŵ_t.
    """
    regions, words = F.normalize(regions, dim=-1), F.normalize(words, dim=-1)
    logits = gamma * torch.einsum("brd,btd->brt", regions, words)
    logits = logits.masked_fill(~rearrange(mask, "b t -> b 1 t"), MASKED_LOGIT)
    return logits.softmax(-1), words


def coordinate_channels(images: torch.Tensor) -> torch.Tensor:
    """(b, 2, H, W): each pixel's row and column position, from -1 (top, left) to 1 (bottom, right)."""
    b, _, height, width = images.shape
    rows = torch.linspace(-1, 1, height, device=images.device, dtype=images.dtype)
    columns = torch.linspace(-1, 1, width, device=images.device, dtype=images.dtype)
    grid = torch.stack(torch.meshgrid(rows, columns, indexing="ij"))
    return grid.expand(b, 2, height, width)
