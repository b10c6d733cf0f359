"""The XMC-GAN training objective in two phases, in the manner of NVlabs/stylegan3's loss object:
the networks hold no loss logic; this object runs them and combines the terms of model/losses.py.

    discriminator_loss = w_adv hinge_D(real, fake) + w_sent InfoNCE(f(real), e(s)) + w_word L_word(real regions, words)
    generator_loss     = w_adv hinge_G(fake) + w_sent InfoNCE(f(fake), e(s)) + w_word L_word(fake regions, words)
                         + w_img InfoNCE(f(fake), f(real)) + w_vgg InfoNCE(P(fake), P(real))

where P is the frozen pretrained network of `image_encoder` (LossConfig): VGG-19 features, or
ResNet-50 ImageNet logits as in the authors' released code.

as the authors' train step computes them (xmcgan/xmc_gan.py): D's contrastive heads learn only
from real pairs, and the contrastive terms on fakes train only G. Each phase leaves gradients
only on its own network: the discriminator phase makes fakes without G gradients, and the
generator phase runs D with its parameters frozen (their .grad is not touched). The training
loop calls .backward() on a phase's loss and steps that phase's optimiser.

Distributed (see model/distributed.py): each process's loss is over its local batch, and the
gradients of the global-batch loss are the mean over processes of the local gradients. With
`sync_batch_stats` (ModelConfig) and `gather_negatives` (LossConfig) that mean equals the
gradient of one process on the concatenated batch exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .config import LossConfig
from .distributed import gather_batch
from .losses import hinge_discriminator, hinge_generator, info_nce, word_region_contrastive
from .resnet import RESNET_INPUT_SIZE, ResNet50Logits
from .text_encoder import TextEmbedding
from .vgg import VGG19Features


def pretrained_image_encoder(config: LossConfig) -> nn.Module | None:
    """The frozen network of the pretrained image-image loss that `config` asks for (None when its weight is 0)."""
    if config.vgg_weight <= 0:
        return None
    if config.image_encoder == "resnet50_logits":
        return ResNet50Logits(weights=config.image_encoder_weights, input_size=config.vgg_input_size)
    return VGG19Features(layer=config.vgg_layer, input_size=config.vgg_input_size, weights=config.image_encoder_weights)


def _encoder_mismatch(vgg: nn.Module, config: LossConfig) -> str | None:
    if config.image_encoder == "resnet50_logits":
        if not isinstance(vgg, ResNet50Logits) or vgg.input_size != (config.vgg_input_size or RESNET_INPUT_SIZE):
            return f"{type(vgg).__name__} is not the loss config's ResNet50Logits(input_size={config.vgg_input_size})"
        return None
    if not isinstance(vgg, VGG19Features) or (vgg.layer, vgg.input_size) != (config.vgg_layer, config.vgg_input_size):
        layer, size = getattr(vgg, "layer", None), getattr(vgg, "input_size", None)
        return (
            f"{type(vgg).__name__}(layer={layer!r}, input_size={size}) does not match the loss config "
            f"(vgg_layer={config.vgg_layer!r}, vgg_input_size={config.vgg_input_size})"
        )
    return None


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of `module` do not require grad inside the block (restored after)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags, strict=True):
            param.requires_grad_(flag)


class XMCGANLoss:
    def __init__(self, *, generator: nn.Module, discriminator: nn.Module, vgg: nn.Module | None, config: LossConfig):
        """`vgg`: the pretrained image encoder (VGG19Features or ResNet50Logits), pretrained_image_encoder(config)."""
        if config.vgg_weight > 0:
            if vgg is None:
                wanted = "a ResNet50Logits" if config.image_encoder == "resnet50_logits" else "a VGG19Features"
                raise ValueError(f"vgg_weight > 0 needs {wanted} (pretrained_image_encoder(loss config) builds it)")
            if problem := _encoder_mismatch(vgg, config):
                raise ValueError(problem)
        self.generator, self.discriminator, self.vgg, self.config = generator, discriminator, vgg, config

    def discriminator_loss(
        self, *, real: torch.Tensor, text: TextEmbedding, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hinge on real and fake, and D's contrastive heads on the real pairs."""
        c = self.config
        _check_batch(real, text, z)
        with torch.no_grad():
            fake = self.generator(z, text)
        both = self.discriminator(torch.cat([real, fake]), torch.cat([text.sentence, text.sentence]))
        real_out, fake_out = both.split(len(real))
        terms = {
            "d_adversarial": (c.adversarial_weight, lambda: hinge_discriminator(real_out.logits, fake_out.logits)),
            "d_sentence": (
                c.sentence_weight,
                lambda: self._info_nce(real_out.image_features, real_out.sentence_features),
            ),
            "d_word": (c.word_weight, lambda: self._word_loss(real_out.region_features, text)),
        }
        stats = {"d_real_logit": real_out.logits.mean().item(), "d_fake_logit": fake_out.logits.mean().item()}
        return _combine(terms, total="d_total", stats=stats)

    def generator_loss(
        self, *, real: torch.Tensor, text: TextEmbedding, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Adversarial and contrastive terms on fakes; gradients reach only G's parameters."""
        c = self.config
        _check_batch(real, text, z)
        fake = self.generator(z, text)
        with frozen(self.discriminator):
            fake_out = self.discriminator(fake, text.sentence)
            real_features = None
            if c.image_weight > 0:
                with torch.no_grad():
                    real_features = self.discriminator(real, text.sentence).image_features
        terms = {
            "g_adversarial": (c.adversarial_weight, lambda: hinge_generator(fake_out.logits)),
            "g_sentence": (
                c.sentence_weight,
                lambda: self._info_nce(fake_out.image_features, fake_out.sentence_features),
            ),
            "g_word": (c.word_weight, lambda: self._word_loss(fake_out.region_features, text)),
            "g_image": (c.image_weight, lambda: self._info_nce(fake_out.image_features, real_features)),
            "g_vgg": (c.vgg_weight, lambda: self._vgg_loss(fake, real)),
        }
        return _combine(terms, total="g_total", stats={})

    def _info_nce(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.config.gather_negatives:
            return info_nce(x, y, temperature=self.config.temperature)
        (x_all, offset), (y_all, _) = gather_batch(x), gather_batch(y)
        return info_nce(x, y, temperature=self.config.temperature, x_all=x_all, y_all=y_all, offset=offset)

    def _word_loss(self, regions: torch.Tensor, text: TextEmbedding) -> torch.Tensor:
        c = self.config
        gammas = dict(gamma1=c.word_gamma1, gamma2=c.word_gamma2, gamma3=c.word_gamma3)
        if not c.gather_negatives:
            return word_region_contrastive(regions, text.words, text.mask, **gammas)
        (regions_all, offset), (words_all, _) = gather_batch(regions), gather_batch(text.words)
        mask_all = gather_batch(text.mask.to(torch.uint8))[0].bool()  # gloo gathers no bool tensors
        return word_region_contrastive(
            regions, text.words, text.mask, **gammas, regions_all=regions_all, words_all=words_all, mask_all=mask_all,
            offset=offset,
        )  # fmt: skip

    def _vgg_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            real_features = self.vgg(real)
        return self._info_nce(self.vgg(fake), real_features)


def _check_batch(real: torch.Tensor, text: TextEmbedding, z: torch.Tensor) -> None:
    if real.ndim != 4 or real.shape[1] != 3 or not len(real) == len(text) == len(z):
        raise ValueError(
            f"a batch needs real (b, 3, H, W), text of b captions and z (b, z_dim); got real {tuple(real.shape)}, "
            f"{len(text)} captions, z {tuple(z.shape)}"
        )


def _combine(terms: dict, *, total: str, stats: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """Σ weight · term over the terms whose weight is not 0; the terms are computed only then."""
    values = {name: term() for name, (weight, term) in terms.items() if weight > 0}
    loss = sum(terms[name][0] * value for name, value in values.items())
    return loss, {**{name: value.item() for name, value in values.items()}, total: loss.item(), **stats}
