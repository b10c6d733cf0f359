"""The KServe predictor: the generator and its text encoder behind V1 and V2 inference, over REST and gRPC.
It serves a model folder of either architecture (XMC-GAN, MirrorGAN: model.sampling.TextToImage.from_pretrained).

`load` resolves the model URI (local folder or MLflow registry), builds the TextToImage pipeline,
makes its arithmetic batch-invariant and checks that it is, and only then sets `ready`, so the
readiness probe passes once requests can be served. Every torch call of the server, from loading
on, runs on one thread, the generator thread: a second thread that runs torch gets an OpenMP
team of its own, and two teams fight over the cores (measured on 2 cores with 2 intra-op threads:
a batch-1 generator call 7.2 ms from a second thread against 2.1 ms when one thread does all).
Requests are validated in `preprocess`, turned into one job per image and handed to the
micro-batcher, whose generator thread renders jobs of concurrent requests together and encodes
their PNGs (rendering.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kserve
from kserve.errors import ModelNotReady
from kserve.logging import logger
from kserve.protocol.infer_type import InferRequest, InferResponse

from model.sampling import TextToImage

from .batching import ImageJob, MicroBatcher
from .config import ServeConfig
from .loading import ModelSource, resolve_model_source
from .protocol import (
    IMAGE_OUTPUT,
    PROMPT_INPUT,
    GenerationRequest,
    ModelIdentity,
    RequestLimits,
    invalid,
    offered_sizes,
    parse_v1,
    parse_v2,
    v1_response,
    v2_response,
)
from .rendering import Invariance, Renderer, batch_invariant_math, check_batch_invariance

MIB = 1 << 20


@dataclass(frozen=True)
class ParsedRequest:
    protocol: str  # "v1" | "v2" | "grpc" (V2 over gRPC)
    request: GenerationRequest
    request_id: str | None = None


def image_jobs(request: GenerationRequest) -> list[ImageJob]:
    """One job per image, prompt-major: image j of prompt p is (prompt p, seed, j)."""
    return [
        ImageJob(prompt, request.seed, j, request.size)
        for prompt in request.prompts
        for j in range(request.images_per_prompt)
    ]


def check_prompts(parsed: ParsedRequest, pipeline: TextToImage) -> None:
    """The model's own refusals (a MirrorGAN prompt with no known word), named as protocol.py names fields."""
    for i, prompt in enumerate(parsed.request.prompts):
        if problem := pipeline.prompt_problem(prompt):
            raise invalid(f"instances[{i}].prompt" if parsed.protocol == "v1" else f"inputs[0].data[{i}]", problem)


class XMCGANPredictor(kserve.Model):
    def __init__(self, config: ServeConfig):
        super().__init__(config.model_name)
        self.config = config
        self.identity: ModelIdentity | None = None
        self.limits: RequestLimits | None = None
        self.renderer: Renderer | None = None
        self.batcher: MicroBatcher | None = None
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")

    def _build(self, source: ModelSource) -> tuple[TextToImage, Invariance]:
        pipeline = TextToImage.from_pretrained(source.path, device=self.config.device)
        batch_invariant_math(pipeline)
        return pipeline, check_batch_invariance(pipeline, max_batch=self.config.max_batch_images)

    def load(self) -> bool:
        source = resolve_model_source(self.config.model_uri, tracking_uri=self.config.tracking_uri)
        logger.info("loading the generator from %s (version %s)", source.uri, source.version)
        pipeline, invariance = self.model_thread.submit(self._build, source).result()
        config = self.config
        if not invariance.generator:
            logger.warning("batched images differ from single ones on this machine: generating one image at a time")
        if not invariance.encoder:
            logger.warning("batched prompt embeddings differ from single ones: encoding one prompt at a time")
        self.renderer = Renderer(
            pipeline,
            invariance,
            cache_entries=config.prompt_cache_entries,
            cache_bytes=int(config.prompt_cache_mib * MIB),
        )
        self.limits = RequestLimits(
            max_prompts=config.max_prompts,
            max_images_per_prompt=config.max_images_per_prompt,
            max_images_per_request=config.max_images_per_request,
            max_prompt_chars=config.max_prompt_chars,
            sizes=offered_sizes(pipeline.image_size),
        )
        self.identity = ModelIdentity(name=self.name, version=source.version)
        self.batcher = MicroBatcher(
            self.renderer,
            max_batch=config.max_batch_images,
            wait_s=config.batch_wait_ms / 1000,
            max_queued=config.max_queued_images,
            thread=self.model_thread,
        )
        self.ready = True
        logger.info(
            "ready: %s version %s, sizes %s, batched rendering bit-exact: %s (text encoder: %s)",
            self.name,
            source.version,
            list(self.limits.sizes),
            invariance.generator,
            invariance.encoder,
        )
        return self.ready

    async def __call__(self, body, headers=None, **kwargs):
        if not self.ready:
            raise ModelNotReady(self.name)
        with self.batcher.expecting():  # so a batch knows to wait for requests still being validated
            return await super().__call__(body, headers, **kwargs)

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> ParsedRequest:
        if isinstance(payload, InferRequest):
            protocol = "grpc" if payload.from_grpc else "v2"
            parsed = ParsedRequest(protocol, parse_v2(payload, self.limits), payload.id)
        else:
            parsed = ParsedRequest("v1", parse_v1(payload, self.limits))
        check_prompts(parsed, self.renderer.pipeline)
        return parsed

    def validate(self, payload: ParsedRequest) -> ParsedRequest:
        return payload  # preprocess has validated the whole request

    async def predict(self, payload: ParsedRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        request = payload.request
        pngs = await self.batcher.submit(image_jobs(request))
        if payload.protocol == "v1":
            return v1_response(request, pngs, self.identity)
        binary = payload.protocol == "grpc"
        return v2_response(request, pngs, self.identity, request_id=payload.request_id, binary=binary)

    def get_input_types(self) -> list[dict]:
        return [{"name": PROMPT_INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": IMAGE_OUTPUT, "datatype": "BYTES", "shape": [-1, -1]}]

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.model_thread.shutdown(wait=False, cancel_futures=True)
        super().stop()
