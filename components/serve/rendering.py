"""Jobs in, PNGs out: the server's one path from (prompt, seed, index) to an image.

`Renderer` runs in the batcher's generator thread. For a batch of jobs it takes each distinct
prompt's embedding from the prompt cache (encoding the prompts not held), runs the generator once
on the whole batch, and encodes each image as a PNG at its job's size, all in that one thread (a
hand-off to another thread per request costs more than the encoding). Each stage's time goes to
the `xmcgan_serve_stage_seconds` histogram, so /metrics shows where a request's time goes.

Batching is only safe if an image does not depend on what shares its batch. Kernels that pick
their algorithm by batch size break that in the last bit, enough to flip a pixel's rounding.
`batch_invariant_math` removes the two causes seen on CPU, in the generator's own layers: oneDNN
picks its convolution algorithm by batch size, so each sample is convolved on its own (the
batch-1 kernel: 1.0-1.1x the time per image of a batched oneDNN convolution here, where torch's
non-oneDNN convolution, invariant but 1.4-1.9x slower, grows slower per image with the batch);
MKL's gemm gives a row other bits with 1-3 rows than with more, even in its strict reproducible
mode (MKL_CBWR, set in __main__ before MKL loads), so linear layers on per-image vectors get their
input padded to `MIN_GEMM_ROWS` rows. `check_batch_invariance` then proves it on the loaded model;
whatever fails the check (the text encoder, the generator) runs one prompt or one image at a time.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from model.sampling import TextToImage, image_noise
from model.text_encoder import TextEmbedding

from .batching import ImageJob
from .embeddings import PromptEmbeddings, own_row, stack_rows
from .metrics import STAGE_SECONDS

# MKL's sgemm gives a row other bits with 1-3 rows than with 4 or more (measured with
# MKL_CBWR=AUTO,STRICT on x86-64, 1 and 2 threads); 8 leaves a margin and costs nothing at these sizes
MIN_GEMM_ROWS = 8
PROBE_PROMPTS = (
    "a red circle",
    "a small blue square on the left of a large green triangle",
    "two yellow stars",
    "a purple hexagon at the bottom right, partly hidden behind an orange rectangle",
)


class PerSampleConv2d(nn.Conv2d):
    """nn.Conv2d applied to one sample at a time: every sample gets the batch-1 algorithm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return super().forward(x)
        return torch.cat([super(PerSampleConv2d, self).forward(sample) for sample in x.split(1)])


class RowPaddedLinear(nn.Linear):
    """nn.Linear whose 2-d input is zero-padded to MIN_GEMM_ROWS rows, so a row's arithmetic
    does not depend on how many rows share the call. Same parameters, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        if x.ndim != 2 or rows >= MIN_GEMM_ROWS:
            return super().forward(x)
        padded = torch.cat([x, x.new_zeros(MIN_GEMM_ROWS - rows, x.shape[1])])
        return F.linear(padded, self.weight, self.bias)[:rows]


BATCH_INVARIANT = {nn.Linear: RowPaddedLinear, nn.Conv2d: PerSampleConv2d}


def batch_invariant_math(pipeline: TextToImage) -> None:
    """Give the generator's layers arithmetic that is the same per image in any batch (same parameters)."""
    for module in pipeline.generator.modules():
        if type(module) in BATCH_INVARIANT:
            module.__class__ = BATCH_INVARIANT[type(module)]


def encode_png(pixels: np.ndarray, size: int) -> bytes:
    """PNG bytes of a uint8 image (H, W, 3), box-downscaled to `size` (the mean of each k x k block)."""
    image = Image.fromarray(pixels)
    if image.width != size:
        image = image.resize((size, size), Image.Resampling.BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Invariance:
    encoder: bool  # a prompt's embedding is the same encoded alone or among others
    generator: bool  # an image is the same generated alone or in a batch


class Renderer:
    def __init__(self, pipeline: TextToImage, invariance: Invariance, *, cache_entries: int, cache_bytes: int):
        self.pipeline = pipeline
        self.invariance = invariance
        self.embeddings = PromptEmbeddings(self._encode, max_entries=cache_entries, max_bytes=cache_bytes)

    def _encode(self, prompts: list[str]) -> list[TextEmbedding]:
        if self.invariance.encoder:
            encoded = self.pipeline.text_encoder(prompts)
            return [own_row(encoded, i) for i in range(len(prompts))]
        return [own_row(self.pipeline.text_encoder([prompt]), 0) for prompt in prompts]

    def images(self, jobs: Sequence[ImageJob]) -> np.ndarray:
        """uint8 images (n, H, W, 3) of `jobs`, in job order."""
        start = time.perf_counter()
        rows = self.embeddings.lookup([job.prompt for job in jobs])
        text = stack_rows([rows[job.prompt] for job in jobs])
        keys = [(job.seed, job.index) for job in jobs]
        encoded = time.perf_counter()
        if self.invariance.generator:
            images = self.pipeline.images(text, keys)
        else:
            images = np.concatenate([self.pipeline.images(text[i : i + 1], keys[i : i + 1]) for i in range(len(keys))])
        STAGE_SECONDS.labels("text").observe(encoded - start)
        STAGE_SECONDS.labels("generate").observe(time.perf_counter() - encoded)
        return images

    def __call__(self, jobs: Sequence[ImageJob]) -> list[bytes]:
        """One PNG per job, at the job's size."""
        images = self.images(jobs)
        start = time.perf_counter()
        pngs = [encode_png(pixels, job.size) for pixels, job in zip(images, jobs, strict=True)]
        STAGE_SECONDS.labels("png").observe(time.perf_counter() - start)
        return pngs


def check_batch_invariance(pipeline: TextToImage, *, max_batch: int) -> Invariance:
    """Whether the encoder and the generator give each prompt and image the same bits in a batch
    (of 2, 3, about half of max_batch and max_batch) as alone."""
    encoded = pipeline.text_encoder(list(PROBE_PROMPTS))
    alone = [pipeline.text_encoder([prompt]) for prompt in PROBE_PROMPTS]
    encoder = all(
        torch.equal(getattr(encoded, name)[i], getattr(one, name)[0])
        for i, one in enumerate(alone)
        for name in ("words", "mask", "sentence")
    )
    count = max(2, max_batch)
    text = stack_rows([own_row(alone[i % len(alone)], 0) for i in range(count)])
    z = torch.stack([image_noise(seed=i, index=i % 3, z_dim=pipeline.generator.config.z_dim) for i in range(count)])
    single = [pipeline.generate(text[i : i + 1], z[i : i + 1]) for i in range(count)]
    generator = True
    for n in sorted({min(count, n) for n in (2, 3, count // 2 + 1, count)}):
        batch = pipeline.generate(text[:n], z[:n])
        generator &= all(torch.equal(batch[i], single[i][0]) for i in range(n))
    return Invariance(encoder=encoder, generator=generator)
