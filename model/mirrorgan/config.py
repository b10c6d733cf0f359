"""Configuration of MirrorGAN's pretrained networks: DAMSM (the STEM text encoder with its image
encoder) and STREAM (the captioner). The GAN's own configs are model.config.MirrorGANConfig and
MirrorGANLossConfig (its presets); these two travel with the pretrained weights instead.

Defaults are the authors' (AttnGAN's cfg/DAMSM/coco.yml and code for DAMSM, MirrorGAN's cfg and
the image-captioning code it follows for STREAM), except where a network the authors download
has an offline substitute here; the demo's cheaper settings are in params.yaml.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import VGG_LAYERS
from ..settings import DictConfig


def _problems(config, *, positive: tuple[str, ...], fractions: tuple[str, ...] = ()) -> list[str]:
    problems = []
    for name in positive:
        value = getattr(config, name)
        if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
            problems.append(f"{name} must be a positive number, got {value!r}")
    for name in fractions:
        if not 0 <= getattr(config, name) < 1:
            problems.append(f"{name} must be in [0, 1), got {getattr(config, name)!r}")
    return problems


@dataclass(frozen=True)
class DAMSMConfig(DictConfig):
    """STEM (bi-LSTM text encoder) and DAMSM's image encoder, and how they are pretrained together.

    Image side: the frozen Inception-v3 trunk at `image_size` (authors: 299), regions from Mixed_6e
    (17 x 17 x 768 at 299 px) through a 1x1 conv, the global code from Mixed_7c average-pooled
    (2048) through a linear layer, both to `text_dim`. Offline, the trunk is the TF FID Inception
    (the same architecture). Loss: word-level + sentence-level, both directions (gammas 4, 5, 10).
    Schedule: Adam lr 0.002 (0.5, 0.999), a fresh optimiser each epoch with lr x 0.98 until it is a
    tenth of the start, gradient norm of the RNN clipped at 0.25, batch 48, one random caption per
    image per epoch. The authors' released COCO encoder is their epoch 100.
    """

    max_words: int = 18
    embedding_dim: int = 300
    text_dim: int = 256  # 128 per direction
    dropout: float = 0.5  # on the word embeddings, in training only
    image_size: int = 299  # Inception input side (images are resized bilinearly to it)
    gamma1: float = 4.0
    gamma2: float = 5.0
    gamma3: float = 10.0
    batch_size: int = 48
    lr: float = 0.002
    lr_decay: float = 0.98  # per epoch, until lr is a tenth of the start
    beta1: float = 0.5
    beta2: float = 0.999
    rnn_grad_clip: float = 0.25
    epochs: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        problems = _problems(
            self,
            positive=("max_words", "embedding_dim", "text_dim", "gamma1", "gamma2", "gamma3", "batch_size", "lr",
                      "lr_decay", "rnn_grad_clip", "epochs"),
            fractions=("dropout", "beta1", "beta2"),
        )  # fmt: skip
        if self.text_dim % 2:
            problems.append(f"text_dim must be even (two LSTM directions), got {self.text_dim}")
        if not (isinstance(self.image_size, int) and self.image_size >= 75):
            problems.append(f"image_size must be an integer >= 75 (Inception-v3's least), got {self.image_size!r}")
        if self.batch_size < 2:
            problems.append("batch_size must be at least 2 (the losses contrast the pairs of a batch)")
        if problems:
            raise ValueError("invalid DAMSM config: " + "; ".join(problems))


@dataclass(frozen=True)
class StreamConfig(DictConfig):
    """STREAM, the captioner that redescribes G's last image.

    The authors: a frozen ImageNet ResNet-152 at 224 px, pooled 2048 -> Linear(256) + BatchNorm,
    and an LSTM decoder (Embedding(V, 256), LSTM(256, 512), Linear(512, V)) over the shared
    vocabulary; input [image feature, w1 .. w(T-1)], target [w1 .. wT]; Adam 1e-3, batch 128,
    5 epochs, only the projection, batch norm and decoder train. Offline there are no ResNet
    weights: the trunk is the project's frozen VGG-19 (Caffe weights), its `vgg_layer` map
    average-pooled over positions. STREAM is in the generator's gradient path, so it must never be
    a network that scores the model (the FID Inception, the R-precision dual encoder).
    """

    vgg_layer: str = "block5_pool"
    input_size: int = 224  # images are resized bilinearly to this side first (the authors' 224)
    embed_dim: int = 256
    hidden_dim: int = 512
    batch_size: int = 128
    lr: float = 1e-3
    epochs: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        problems = _problems(self, positive=("input_size", "embed_dim", "hidden_dim", "batch_size", "lr", "epochs"))
        if self.vgg_layer not in VGG_LAYERS:
            problems.append(f"vgg_layer must be one of {list(VGG_LAYERS)}, got {self.vgg_layer!r}")
        if self.batch_size < 2:
            problems.append("batch_size must be at least 2 (batch norm in training)")
        if problems:
            raise ValueError("invalid STREAM config: " + "; ".join(problems))
