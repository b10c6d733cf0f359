"""STREAM, MirrorGAN's semantic text regeneration and alignment module: a captioner that redescribes
the generated image (the authors' CAPTION_CNN and CAPTION_RNN, after the well-known
image-captioning tutorial code), pretrained on real images, then frozen.

    features = BN(Linear(pool(VGG19(image))))              (b, embed)   VGG-19 frozen, pooled over positions
    logits   = Linear(LSTM([features, E w1, ..., E w(T-1)]))            predict w1 .. wT
    loss     = cross-entropy of the caption's words           model/mirrorgan/losses.py caption_loss

The authors' image side is an ImageNet ResNet-152 at 224 px, which has no offline weights here;
the substitute is the project's frozen VGG-19 (model/vgg.py) with its chosen layer average-pooled
(model/mirrorgan/config.py StreamConfig). In GAN training STREAM is frozen and in eval mode, and
its loss's gradient reaches the generator only: it is never a network that scores the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from einops import reduce
from safetensors.torch import load_model, save_model
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..vgg import BLOCKS, VGG19Features
from .config import StreamConfig
from .losses import caption_loss

STREAM_WEIGHTS = "stream.safetensors"
STREAM_CONFIG = "stream.json"


def vgg_channels(layer: str) -> int:
    return BLOCKS[int(layer[5]) - 1][2]


class StreamEncoder(nn.Module):
    """Images (b, 3, H, W) in [-1, 1] -> (b, embed): frozen VGG-19 to `vgg_layer`, mean over positions, Linear, BN."""

    def __init__(self, config: StreamConfig, *, vgg: VGG19Features | None = None):
        super().__init__()
        self.vgg = vgg or VGG19Features(layer=config.vgg_layer, input_size=config.input_size)
        self.channels = vgg_channels(config.vgg_layer)
        self.linear = nn.Linear(self.channels, config.embed_dim)
        self.bn = nn.BatchNorm1d(config.embed_dim, momentum=0.01)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen part: VGG-19 features averaged over positions (b, channels)."""
        return reduce(self.vgg(images), "b (c p) -> b c", "mean", c=self.channels)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(pooled))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.pooled(images))


class StreamDecoder(nn.Module):
    """Embedding(V, embed), LSTM(embed, hidden), Linear(hidden, V): teacher-forced logits of each caption word."""

    def __init__(self, config: StreamConfig, *, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, batch_first=True)
        self.linear = nn.Linear(config.hidden_dim, vocab_size)

    def forward(
        self, features: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (N, V), targets (N,)) over the N = Σ lengths words: step 0 sees the image, step t word t."""
        inputs = torch.cat([features[:, None], self.embed(ids)], dim=1)  # [feature, w1, ..., wT]
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = self.lstm(packed)
        targets = pack_padded_sequence(ids, lengths.cpu(), batch_first=True, enforce_sorted=False).data
        return self.linear(hidden.data), targets


class STREAM(nn.Module):
    """The captioner; `loss(images, ids, lengths)` is the redescription loss of the images' captions."""

    def __init__(self, config: StreamConfig, *, vocab_size: int, vgg: VGG19Features | None = None):
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        self.encoder = StreamEncoder(config, vgg=vgg)
        self.decoder = StreamDecoder(config, vocab_size=vocab_size)

    def loss(self, images: torch.Tensor, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return caption_loss(*self.decoder(self.encoder(images), ids, lengths))

    def trained(self) -> nn.ModuleDict:
        """What pretraining learns (projection, batch norm, decoder); the VGG-19 comes from its own package."""
        return nn.ModuleDict({"linear": self.encoder.linear, "bn": self.encoder.bn, "decoder": self.decoder})

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        save_model(self.trained(), str(directory / STREAM_WEIGHTS), metadata={"format": "pt"})
        meta = {"config": self.config.to_dict(), "vocab_size": self.vocab_size}
        (directory / STREAM_CONFIG).write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu") -> STREAM:
        """A pretrained STREAM, frozen and in eval mode."""
        directory = Path(directory)
        for name in (STREAM_WEIGHTS, STREAM_CONFIG):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"no {name} in {directory}: not a pretrained STREAM folder")
        meta = json.loads((directory / STREAM_CONFIG).read_text())
        stream = cls(StreamConfig.from_dict(meta["config"]), vocab_size=meta["vocab_size"])
        load_model(stream.trained(), str(directory / STREAM_WEIGHTS), strict=True, device=str(device))
        return stream.to(device).eval().requires_grad_(False)
