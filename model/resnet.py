"""Frozen ResNet-50 ImageNet class logits for the image-image contrastive loss, as the authors'
released code computes it (xmcgan/utils/pretrained_model_utils.py: images resized bilinearly to
224x224, a ResNet-50 with 1000 outputs, the loss on its final outputs, not on a feature map).

The weights are torchvision's ResNet-50 ImageNet state dict given by local path (for instance
`resnet50-11ad3fa6.pth`, IMAGENET1K_V2, or `resnet50-0676ba61.pth`, IMAGENET1K_V1, downloaded once);
nothing is fetched here. Inputs in [-1, 1] are brought to torchvision's ImageNet normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET_INPUT_SIZE = 224  # the authors' RESNET_IMG_SIZE


class ResNet50Logits(nn.Module):
    """forward(images (b, 3, H, W) in [-1, 1]) -> ImageNet class logits (b, 1000); frozen.

    `weights`: a torchvision ResNet-50 state dict file (loaded strictly, without unpickling objects),
    or a state dict already in memory (tests pass a randomly initialised network's)."""

    layer = "logits"

    def __init__(self, *, weights: str | Path | dict, input_size: int | None = None):
        super().__init__()
        from torchvision.models import resnet50

        self.input_size = input_size or RESNET_INPUT_SIZE
        if not isinstance(weights, dict):
            if not Path(weights).is_file():
                raise FileNotFoundError(
                    f"ResNet-50 weights not found at {weights}: download torchvision's ImageNet state dict once "
                    "(https://download.pytorch.org/models/resnet50-11ad3fa6.pth) and give its path as the loss "
                    "config's image_encoder_weights"
                )
            weights = torch.load(weights, map_location="cpu", weights_only=True)
        self.net = resnet50()
        self.net.load_state_dict(weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> ResNet50Logits:
        return super().train(False)  # frozen: batch norm keeps its ImageNet statistics

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=self.input_size, mode="bilinear", align_corners=False)
        return self.net(((images + 1) / 2 - self.mean) / self.std)
