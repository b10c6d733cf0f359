"""Pretraining of MirrorGAN's frozen networks on real (image, caption) pairs of the training split:
DAMSM (STEM + image encoder, AttnGAN's pretrain_DAMSM.py) and STREAM (the captioner).

Both image trunks are frozen, so their features are computed once per image and training runs on
them (the authors recompute them every step from randomly cropped and flipped images; here each
image is seen as it is). Everything random is seeded: each epoch's image order, the caption drawn
for each image (one per image per epoch, as their dataset does) and the word subset of a long
caption are functions of (seed, epoch, position).

This module knows nothing of MLflow or the pipeline: components/pretrain runs it, caches the
results by data version and config, and logs them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .config import DAMSMConfig, StreamConfig
from .damsm import DAMSM, InceptionTrunk
from .losses import caption_loss, damsm_loss
from .stem import caption_ids
from .stream import STREAM, StreamEncoder
from .vocabulary import Vocabulary

Progress = Callable[[int], None] | None


def to_signed(images: np.ndarray) -> torch.Tensor:
    """uint8 (b, H, W, 3) -> float (b, 3, H, W) in [-1, 1], the generator's range."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def inception_features(
    images: np.ndarray, trunk: InceptionTrunk, *, batch_size: int = 16, progress: Progress = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen trunk's regions (n, 768, r, r) float16 and pooled features (n, 2048) float32."""
    regions, pooled = [], []
    for start in range(0, len(images), batch_size):
        r, p = trunk(to_signed(images[start : start + batch_size]))
        regions.append(r.half())
        pooled.append(p.float())
        if progress:
            progress(len(r))
    return torch.cat(regions), torch.cat(pooled)


@torch.no_grad()
def stream_features(
    images: np.ndarray, encoder: StreamEncoder, *, batch_size: int = 32, progress: Progress = None
) -> torch.Tensor:
    """The frozen VGG-19 features of STREAM's encoder, pooled: (n, channels) float32."""
    out = []
    for start in range(0, len(images), batch_size):
        out.append(encoder.pooled(to_signed(images[start : start + batch_size])))
        if progress:
            progress(len(out[-1]))
    return torch.cat(out)


def epoch_batches(count: int, batch_size: int, *, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled image indices in full batches (the authors' drop_last)."""
    if count < batch_size:
        raise ValueError(f"{count} images cannot fill one batch of {batch_size}: lower the batch size")
    order = np.random.default_rng([seed, epoch]).permutation(count)
    return [order[i : i + batch_size] for i in range(0, count - batch_size + 1, batch_size)]


def batch_captions(
    captions_per_image: list[list[str]], indices: np.ndarray, vocabulary: Vocabulary, *, max_words: int, seed: int,
    epoch: int,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One random caption of each image (ids, lengths), drawn from (seed, epoch, image)."""
    rngs = [np.random.default_rng([seed, epoch, int(i), 1]) for i in indices]
    chosen = [
        captions_per_image[i][int(rng.integers(len(captions_per_image[i])))]
        for i, rng in zip(indices, rngs, strict=True)
    ]
    return caption_ids(chosen, vocabulary, max_words=max_words, rngs=rngs)


def _mean(history: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([h[key] for h in history])) for key in history[0]}


def train_damsm(
    *,
    regions: torch.Tensor,
    pooled: torch.Tensor,
    captions_per_image: list[list[str]],
    vocabulary: Vocabulary,
    config: DAMSMConfig,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[DAMSM, list[dict[str, float]]]:
    """STEM and the image encoder's layers trained on the cached trunk features; returns the frozen
    DAMSM and each epoch's mean losses. The authors' schedule: a fresh Adam every epoch at lr, lr x
    lr_decay per epoch while above a tenth of the start, RNN gradient norm clipped."""
    torch.manual_seed(config.seed)
    damsm = DAMSM(config, vocabulary)
    parameters = [*damsm.stem.parameters(), *damsm.image_encoder.parameters()]
    lr, history = config.lr, []
    for epoch in range(config.epochs):
        optimiser = torch.optim.Adam(parameters, lr=lr, betas=(config.beta1, config.beta2))
        damsm.train()
        steps = []
        for indices in epoch_batches(len(pooled), config.batch_size, seed=config.seed, epoch=epoch):
            ids, lengths = batch_captions(
                captions_per_image, indices, vocabulary, max_words=config.max_words, seed=config.seed, epoch=epoch
            )
            region_codes, image_codes = damsm.image_encoder(regions[indices], pooled[indices])
            text = damsm.stem(ids, lengths)
            terms = damsm_loss(
                regions=region_codes, image_codes=image_codes, words=text.words, mask=text.mask,
                sentences=text.sentence, gamma1=config.gamma1, gamma2=config.gamma2, gamma3=config.gamma3,
            )  # fmt: skip
            optimiser.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(damsm.stem.parameters(), config.rnn_grad_clip)
            optimiser.step()
            steps.append({k: v.item() for k, v in terms.items()})
        history.append({**_mean(steps), "lr": lr})
        if on_epoch:
            on_epoch(epoch, history[-1])
        if lr > config.lr / 10:
            lr *= config.lr_decay
    return damsm.eval().requires_grad_(False), history


def train_stream(
    *,
    pooled: torch.Tensor,
    captions_per_image: list[list[str]],
    vocabulary: Vocabulary,
    config: StreamConfig,
    max_words: int,
    stream: STREAM | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[STREAM, list[dict[str, float]]]:
    """STREAM's projection, batch norm and decoder trained on the cached VGG-19 features (Adam, teacher
    forcing on the shared vocabulary's ids); returns the frozen STREAM and each epoch's mean loss."""
    torch.manual_seed(config.seed)
    stream = stream or STREAM(config, vocab_size=len(vocabulary))
    optimiser = torch.optim.Adam(stream.trained().parameters(), lr=config.lr)
    history = []
    for epoch in range(config.epochs):
        stream.train()
        steps = []
        for indices in epoch_batches(len(pooled), config.batch_size, seed=config.seed, epoch=epoch):
            ids, lengths = batch_captions(
                captions_per_image, indices, vocabulary, max_words=max_words, seed=config.seed, epoch=epoch
            )
            loss = caption_loss(*stream.decoder(stream.encoder.project(pooled[indices]), ids, lengths))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            steps.append({"caption_loss": loss.item()})
        history.append(_mean(steps))
        if on_epoch:
            on_epoch(epoch, history[-1])
    return stream.eval().requires_grad_(False), history
