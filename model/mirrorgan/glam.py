"""GLAM, MirrorGAN's cascaded generator with global-local attention (the authors' model.py G_NET and
GLAttention.py), with conditioning augmentation (CA_NET) in front.

    c, mu, logvar = CA(s)          Linear(text_dim -> 4 cond) + GLU: mu and log-variance; c = mu + eps exp(logvar / 2)
    h0 = InitStage([c; z])         Linear (no bias) + BN + GLU -> 4x4, up-blocks to base_size, g_base channels
    h_k = NextStage(h_k-1, c, words)   word attention + sentence attention, 1x1 conv, residual blocks, up-block
    image_k = tanh(conv3x3(h_k))   one image per stage: base_size, 2 base_size, ...

The per-image noise is z (b, noise_dim + condition_dim): the authors' noise, then CA's epsilon,
which they draw at test time too; taking both from the caller's seeded noise makes an image a
function of (caption, noise). Weights: orthogonal for convolutions and linear layers, batch-norm
scales N(1, 0.02) (the authors' weights_init); CA's layer too, as it sits inside their G_NET.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..config import MirrorGANConfig
from ..pretrained import PretrainedMixin
from ..text_encoder import TextEmbedding


class GLU(nn.Module):
    """x[:, :C/2] * sigmoid(x[:, C/2:]) over channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(x, dim=1)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Nearest x2, 3x3 conv to twice the channels, BN, GLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        conv3x3(in_channels, 2 * out_channels),
        nn.BatchNorm2d(2 * out_channels),
        GLU(),
    )


class ResBlock(nn.Module):
    """x + BN(conv3x3(GLU(BN(conv3x3(x)))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            conv3x3(channels, 2 * channels),
            nn.BatchNorm2d(2 * channels),
            GLU(),
            conv3x3(channels, channels),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ConditioningAugmentation(nn.Module):
    """c = mu(s) + eps * exp(logvar(s) / 2), with [mu; logvar] = GLU(Linear(s)) (StackGAN's CA)."""

    def __init__(self, text_dim: int, condition_dim: int):
        super().__init__()
        self.condition_dim = condition_dim
        self.fc = nn.Linear(text_dim, 4 * condition_dim)

    def forward(self, sentence: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = F.glu(self.fc(sentence), dim=1).split(self.condition_dim, dim=1)
        return mu + eps * torch.exp(0.5 * logvar), mu, logvar


class InitStage(nn.Module):
    """[c; z] -> 4x4 map of g_base * 2^n channels -> n up-blocks halving the channels -> base_size, g_base."""

    def __init__(self, config: MirrorGANConfig):
        super().__init__()
        ups = (config.base_size // 4).bit_length() - 1  # the authors' 4 up-blocks at base 64
        self.channels = config.g_base * 2**ups
        self.fc = nn.Sequential(
            nn.Linear(config.condition_dim + config.noise_dim, 2 * self.channels * 16, bias=False),
            nn.BatchNorm1d(2 * self.channels * 16),
            GLU(),
        )
        self.ups = nn.Sequential(*(up_block(self.channels // 2**i, self.channels // 2 ** (i + 1)) for i in range(ups)))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.fc(torch.cat([c, z], dim=1)), "b (c h w) -> b c h w", h=4, w=4)
        return self.ups(h)


@dataclass
class Attention:
    word_context: torch.Tensor  # (b, C, H, W)
    sentence_context: torch.Tensor  # (b, C, H, W)
    word_attention: torch.Tensor  # (b, T, H, W): each pixel's softmax over the caption's words


class GlobalLocalAttention(nn.Module):
    """GLAttentionGeneral: each pixel attends over the words (local), the condition over channels (global).

    word context_p = Σ_t softmax_t(h_p · W w_t) W w_t          padded words excluded
    sentence context = e ⊙ softmax_channels(conv1x1(h ⊙ e)),    e = Linear(c) broadcast over pixels
    """

    def __init__(self, channels: int, text_dim: int, condition_dim: int):
        super().__init__()
        self.words_proj = nn.Linear(text_dim, channels, bias=False)  # the authors' 1x1 conv over words
        self.sentence_proj = nn.Linear(condition_dim, channels)
        self.sentence_vis = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, h: torch.Tensor, c: torch.Tensor, words: torch.Tensor, mask: torch.Tensor) -> Attention:
        height, width = h.shape[-2:]
        words = self.words_proj(words)  # (b, T, C)
        logits = torch.einsum("bchw,btc->bthw", h, words)
        logits = logits.masked_fill(~rearrange(mask, "b t -> b t 1 1"), float("-inf"))
        attention = logits.softmax(dim=1)
        word_context = torch.einsum("bthw,btc->bchw", attention, words)
        sentence = rearrange(self.sentence_proj(c), "b c -> b c 1 1").expand(-1, -1, height, width)
        sentence_context = sentence * self.sentence_vis(h * sentence).softmax(dim=1)
        return Attention(word_context, sentence_context, attention)


class NextStage(nn.Module):
    """[h; word context; sentence context] -> 1x1 conv to 2 g_base -> residual blocks -> up-block to g_base."""

    def __init__(self, config: MirrorGANConfig):
        super().__init__()
        gf = config.g_base
        self.attention = GlobalLocalAttention(gf, config.require_text_dim(), config.condition_dim)
        self.joint = nn.Conv2d(3 * gf, 2 * gf, 1, bias=False)
        self.residual = nn.Sequential(*(ResBlock(2 * gf) for _ in range(config.residual_blocks)))
        self.up = up_block(2 * gf, gf)

    def forward(self, h: torch.Tensor, c: torch.Tensor, text: TextEmbedding) -> tuple[torch.Tensor, torch.Tensor]:
        attended = self.attention(h, c, text.words, text.mask)
        joint = self.joint(torch.cat([h, attended.word_context, attended.sentence_context], dim=1))
        return self.up(self.residual(joint)), attended.word_attention


@dataclass
class GLAMOutput:
    images: list[torch.Tensor]  # one per stage, (b, 3, size, size) in [-1, 1], smallest first
    word_attention: list[torch.Tensor]  # one per attention stage, (b, T, H, W)
    mu: torch.Tensor  # (b, condition_dim)
    logvar: torch.Tensor


def init_weights(module: nn.Module) -> nn.Module:
    """The authors' weights_init: orthogonal conv and linear weights, zero linear biases, BN scale N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear):
            nn.init.orthogonal_(layer.weight, 1.0)
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
    return module


class MirrorGANGenerator(PretrainedMixin, nn.Module):
    """forward(z (b, noise_dim + condition_dim), text: TextEmbedding of STEM) -> last stage's images (b, 3, H, W)."""

    weights_name = "generator.safetensors"
    config_class = MirrorGANConfig

    def __init__(self, config: MirrorGANConfig):
        super().__init__()
        self.config = config
        config.require_text_dim()
        self.ca = ConditioningAugmentation(config.text_dim, config.condition_dim)
        self.init_stage = InitStage(config)
        self.next_stages = nn.ModuleList(NextStage(config) for _ in range(config.stages - 1))
        self.to_image = nn.ModuleList(nn.Sequential(conv3x3(config.g_base, 3), nn.Tanh()) for _ in range(config.stages))
        init_weights(self)

    def stages(self, z: torch.Tensor, text: TextEmbedding) -> GLAMOutput:
        """Every stage's images, the word attention maps, and CA's mu and log-variance (for the KL term)."""
        self._check_inputs(z, text)
        noise, eps = z.split([self.config.noise_dim, self.config.condition_dim], dim=1)
        c, mu, logvar = self.ca(text.sentence, eps)
        h = self.init_stage(noise, c)
        images, attention = [self.to_image[0](h)], []
        for stage, to_image in zip(self.next_stages, self.to_image[1:], strict=True):
            h, word_attention = stage(h, c, text)
            images.append(to_image(h))
            attention.append(word_attention)
        return GLAMOutput(images, attention, mu, logvar)

    def forward(self, z: torch.Tensor, text: TextEmbedding) -> torch.Tensor:
        return self.stages(z, text).images[-1]

    def _check_inputs(self, z: torch.Tensor, text: TextEmbedding) -> None:
        config, problems = self.config, []
        if z.ndim != 2 or z.shape[1] != config.z_dim:
            problems.append(f"z must be (batch, {config.noise_dim} + {config.condition_dim}), got {tuple(z.shape)}")
        if text.words.ndim != 3 or text.words.shape[-1] != config.text_dim:
            problems.append(f"text.words must be (batch, words, {config.text_dim}), got {tuple(text.words.shape)}")
        if text.sentence.shape != (len(z), config.text_dim):
            problems.append(f"text.sentence must be ({len(z)}, {config.text_dim}), got {tuple(text.sentence.shape)}")
        if text.mask.shape != text.words.shape[:2] or text.mask.dtype != torch.bool:
            problems.append(f"text.mask must be bool {tuple(text.words.shape[:2])}, got {text.mask.dtype}")
        if problems:
            raise ValueError("MirrorGAN generator inputs: " + "; ".join(problems))
