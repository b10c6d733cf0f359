"""The KServe predictor: the generator and its text encoder behind V1 and V2 inference routes.

`load` resolves the model URI (local folder or MLflow registry), builds the TextToImage pipeline,
runs one warm-up image and only then sets `ready`, so the readiness probe passes once requests
can be served. Requests are validated in `preprocess`, turned into one job per image and handed
to the micro-batcher, which renders jobs of concurrent requests together; PNG encoding runs in a
worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import kserve
import numpy as np
import torch
from kserve.logging import logger
from kserve.protocol.infer_type import InferRequest, InferResponse
from PIL import Image

from model.sampling import TextToImage, image_noise, to_uint8

from .batching import ImageJob, MicroBatcher
from .config import ServeConfig
from .loading import resolve_model_source
from .protocol import (
    IMAGE_OUTPUT,
    PROMPT_INPUT,
    GenerationRequest,
    ModelIdentity,
    RequestLimits,
    offered_sizes,
    parse_v1,
    parse_v2,
    v1_response,
    v2_response,
)

PROBE_PROMPTS = (
    "a red circle",
    "a small blue square on the left of a large green triangle",
    "two yellow stars",
    "a purple hexagon at the bottom right, partly hidden behind an orange rectangle",
)


@dataclass(frozen=True)
class ParsedRequest:
    protocol: str  # "v1" | "v2"
    request: GenerationRequest
    request_id: str | None = None


def image_jobs(request: GenerationRequest) -> list[ImageJob]:
    """One job per image, prompt-major: image j of prompt p is (prompt p, seed, j)."""
    return [ImageJob(prompt, request.seed, j) for prompt in request.prompts for j in range(request.images_per_prompt)]


def render_alone(pipeline, jobs: Sequence[ImageJob]) -> np.ndarray:
    """uint8 images (n, H, W, 3), each encoded and generated on its own: TextToImage's own semantics."""
    z_dim = pipeline.generator.config.z_dim
    return np.concatenate(
        [
            to_uint8(
                pipeline.generate(
                    pipeline.text_encoder([job.prompt]), image_noise(seed=job.seed, index=job.index, z_dim=z_dim)[None]
                )
            )
            for job in jobs
        ]
    )


def render_batched(pipeline, jobs: Sequence[ImageJob]) -> np.ndarray:
    """The same images as render_alone, from one text-encoder call (distinct prompts) and one generator call."""
    prompts = list(dict.fromkeys(job.prompt for job in jobs))
    row = {prompt: i for i, prompt in enumerate(prompts)}
    text = pipeline.text_encoder(prompts)[torch.tensor([row[job.prompt] for job in jobs])]
    z_dim = pipeline.generator.config.z_dim
    z = torch.stack([image_noise(seed=job.seed, index=job.index, z_dim=z_dim) for job in jobs])
    return to_uint8(pipeline.generate(text, z))


def batch_invariant_renderer(pipeline, *, probe_size: int) -> tuple[Callable, bool]:
    """render_batched if it reproduces render_alone bit for bit on a probe batch, else render_alone.

    Batching is only safe if an image does not depend on what shares its batch. Floating-point
    kernels that pick their algorithm by batch size break that in the last bit, enough to flip a
    pixel's rounding; with oneDNN convolutions off (torch then convolves each sample on its own)
    and MKL in strict reproducible mode (MKL_CBWR, set in __main__ before MKL loads) the
    arithmetic of each image is the same in any batch. This checks it on this machine.
    """
    torch.backends.mkldnn.enabled = False
    probe = [ImageJob(PROBE_PROMPTS[i % len(PROBE_PROMPTS)], seed=i, index=i % 3) for i in range(max(2, probe_size))]
    exact = np.array_equal(render_batched(pipeline, probe), render_alone(pipeline, probe))
    return partial(render_batched if exact else render_alone, pipeline), exact


def encode_pngs(images: np.ndarray, size: int) -> list[bytes]:
    """PNG bytes of each uint8 image (n, H, W, 3), box-downscaled to `size` (the mean of each k x k block)."""
    pngs = []
    for pixels in images:
        image = Image.fromarray(pixels)
        if image.width != size:
            image = image.resize((size, size), Image.Resampling.BOX)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


class XMCGANPredictor(kserve.Model):
    def __init__(self, config: ServeConfig):
        super().__init__(config.model_name)
        self.config = config
        self.identity: ModelIdentity | None = None
        self.limits: RequestLimits | None = None
        self.batcher: MicroBatcher | None = None
        self.batch_exact: bool | None = None  # whether batched rendering proved bit-exact at load

    def load(self) -> bool:
        source = resolve_model_source(self.config.model_uri, tracking_uri=self.config.tracking_uri)
        logger.info("loading the generator from %s (version %s)", source.uri, source.version)
        pipeline = TextToImage.from_pretrained(source.path, device=self.config.device)
        config = self.config
        render, self.batch_exact = batch_invariant_renderer(pipeline, probe_size=config.max_batch_images)
        if not self.batch_exact:
            logger.warning("batched images differ from single ones on this machine: rendering one image at a time")
        native = pipeline.image_size
        self.limits = RequestLimits(
            max_prompts=config.max_prompts,
            max_images_per_prompt=config.max_images_per_prompt,
            max_images_per_request=config.max_images_per_request,
            max_prompt_chars=config.max_prompt_chars,
            sizes=offered_sizes(native),
        )
        self.identity = ModelIdentity(name=self.name, version=source.version)
        self.batcher = MicroBatcher(
            render,
            max_batch=config.max_batch_images,
            wait_s=config.batch_wait_ms / 1000,
            max_queued=config.max_queued_images,
        )
        self.ready = True
        logger.info(
            "ready: %s version %s, sizes %s, batched rendering bit-exact: %s",
            self.name,
            source.version,
            list(self.limits.sizes),
            self.batch_exact,
        )
        return self.ready

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> ParsedRequest:
        if isinstance(payload, InferRequest):
            return ParsedRequest("v2", parse_v2(payload, self.limits), payload.id)
        return ParsedRequest("v1", parse_v1(payload, self.limits))

    def validate(self, payload: ParsedRequest) -> ParsedRequest:
        return payload  # preprocess has validated the whole request

    async def predict(self, payload: ParsedRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        request = payload.request
        images = await self.batcher.submit(image_jobs(request))
        pngs = await asyncio.to_thread(encode_pngs, images, request.size)
        if payload.protocol == "v2":
            return v2_response(request, pngs, self.identity, request_id=payload.request_id)
        return v1_response(request, pngs, self.identity)

    def get_input_types(self) -> list[dict]:
        return [{"name": PROMPT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": IMAGE_OUTPUT, "datatype": "BYTES", "shape": [-1, -1]}]

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        super().stop()
