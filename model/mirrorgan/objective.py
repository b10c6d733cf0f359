"""MirrorGAN's training objective in the two phases the shared loop runs (model/training.py), as the
authors' trainer.py step computes it:

    one G forward:        images of every stage, CA's mu and log-variance, from (z, STEM's text)
    discriminator phase:  Σ_stages L_D(stage D; real images resized to the stage, the detached fakes)
    generator phase:      Σ_stages L_G(stage D; the same fakes) + λ L_cap(STREAM(last fake), caption) + w_KL L_KL

with the terms of model/mirrorgan/losses.py. The generator phase reuses the fakes of the
discriminator phase (the authors make one set of fakes per iteration; so the loop's noise for the
generator phase goes unused) and runs after the discriminators' update, as theirs does. Each
phase leaves gradients on its own network only: D sees detached fakes; in the generator phase D
is frozen, and STREAM (with its VGG-19) is frozen for good, so its loss's gradient reaches G and
nothing else. The captions' STEM embeddings come in already computed without gradients.
"""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MirrorGANLossConfig
from ..objective import _combine as combine_terms
from ..objective import frozen
from .discriminator import MirrorGANDiscriminator
from .glam import GLAMOutput, MirrorGANGenerator
from .losses import discriminator_stage_loss, generator_stage_loss, kl_loss
from .stem import EncodedCaptions
from .stream import STREAM


def stage_images(real: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    """The real batch at each stage's size (bilinear, antialiased: the authors' PIL resize of the largest)."""
    return [
        real if size == real.shape[-1] else F.interpolate(real, size=size, mode="bilinear", antialias=True)
        for size in sizes
    ]


class MirrorGANLoss:
    def __init__(
        self,
        *,
        generator: MirrorGANGenerator | nn.Module,
        discriminator: MirrorGANDiscriminator,
        stream: STREAM | None,
        config: MirrorGANLossConfig,
    ):
        if config.stream_weight > 0:
            if stream is None:
                raise ValueError("stream_weight > 0 needs the pretrained STREAM")
            if any(p.requires_grad for p in stream.parameters()) or stream.training:
                raise ValueError("STREAM must be frozen (requires_grad off, eval mode) before GAN training")
        self.generator, self.discriminator, self.stream, self.config = generator, discriminator, stream, config
        self._pending: deque[tuple[EncodedCaptions, GLAMOutput]] = deque()  # fakes awaiting the G phase

    def discriminator_loss(
        self, *, real: torch.Tensor, text: EncodedCaptions, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Make this batch's fakes (kept, with their graph, for the generator phase) and score every stage's D."""
        if not len(real) == len(text) == len(z) or len(real) < 2:
            raise ValueError(f"a batch needs real, text and z of the same size >= 2 (mismatched pairs), got "
                             f"{len(real)}, {len(text)}, {len(z)}")  # fmt: skip
        fakes = self.generator.stages(z, text)
        self._pending.append((text, fakes))
        sentence, terms, stats = text.sentence, {}, {}
        reals = stage_images(real, self.discriminator.config.stage_sizes)
        for k, (stage, x, fake) in enumerate(zip(self.discriminator.stages, reals, fakes.images, strict=True)):
            real_features, fake_features = stage(x), stage(fake.detach())  # separately: D has batch norm
            logits = {
                "real_unconditional": stage.unconditional(real_features),
                "real_conditional": stage.conditional(real_features, sentence),
                "fake_unconditional": stage.unconditional(fake_features),
                "fake_conditional": stage.conditional(fake_features, sentence),
                "mismatched_conditional": stage.conditional(real_features[:-1], sentence[1:]),
            }
            terms[f"d_stage{k}"] = (1.0, lambda logits=logits: discriminator_stage_loss(**logits))
            stats[f"d_stage{k}_real_logit"] = logits["real_conditional"].mean().item()
            stats[f"d_stage{k}_fake_logit"] = logits["fake_conditional"].mean().item()
        return combine_terms(terms, total="d_total", stats=stats)

    def generator_loss(
        self, *, real: torch.Tensor, text: EncodedCaptions, z: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Adversarial terms of every stage, STREAM's redescription of the last stage, CA's KL; on the
        fakes the discriminator phase made for this batch."""
        if not self._pending or self._pending[0][0] is not text:
            raise RuntimeError("the generator phase must follow the discriminator phase on the same batches")
        _, fakes = self._pending.popleft()
        c, sentence = self.config, text.sentence
        terms = {}
        with frozen(self.discriminator):
            for k, (stage, fake) in enumerate(zip(self.discriminator.stages, fakes.images, strict=True)):
                features = stage(fake)
                logits = {
                    "fake_unconditional": stage.unconditional(features),
                    "fake_conditional": stage.conditional(features, sentence),
                }
                terms[f"g_stage{k}"] = (1.0, lambda logits=logits: generator_stage_loss(**logits))
        terms["g_stream"] = (c.stream_weight, lambda: self.stream.loss(fakes.images[-1], text.ids, text.lengths))
        terms["g_kl"] = (c.kl_weight, lambda: kl_loss(fakes.mu, fakes.logvar))
        return combine_terms(terms, total="g_total", stats={})
