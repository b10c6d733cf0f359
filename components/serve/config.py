"""Serving configuration: where the model comes from, where to listen, and every limit on a request.

Each limit bounds memory or time per request or in total, so no request can make the server
allocate without bound: the body size bounds everything parsed, the image limits bound one
request's work, the queue depth bounds work waiting across requests, and the connection limit
bounds bodies being read at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

DEFAULT_MODEL_URI = "models:/xmcgan@champion"


@dataclass(frozen=True)
class ServeConfig:
    # where the generator comes from: a local model folder, models:/NAME@ALIAS or models:/NAME/VERSION
    model_uri: str = DEFAULT_MODEL_URI
    # MLflow tracking URI for models:/ URIs; None falls back to MLFLOW_TRACKING_URI, as MLflow does
    tracking_uri: str | None = None
    # the name on the endpoint paths: /v1/models/NAME:predict, /v2/models/NAME/infer
    model_name: str = "xmcgan"
    host: str = "0.0.0.0"
    http_port: int = 8080
    # the Open Inference Protocol's gRPC endpoint (V2), on the same host, beside HTTP
    enable_grpc: bool = True
    grpc_port: int = 8081
    device: str = "cpu"
    # request limits
    max_prompts: int = 8  # prompts in one request
    max_images_per_prompt: int = 4
    max_images_per_request: int = 16  # prompts x images per prompt
    max_prompt_chars: int = 1000  # Localized Narratives captions run to several hundred characters
    max_body_bytes: int = 64 * 1024
    max_connections: int = 128  # open connections and in-flight requests; uvicorn answers 503 beyond
    # batching across requests: one generator call takes up to max_batch_images images, gathering
    # requests that arrive within batch_wait_ms of the first; at most max_queued_images wait in
    # total, beyond which requests are refused with 503 (the client retries after Retry-After)
    max_batch_images: int = 8
    batch_wait_ms: float = 3.0
    max_queued_images: int = 64
    # prompt embeddings kept for prompts seen before (least recently used dropped first): a hit skips
    # the text encoder; bounded by both entries and memory (0 entries: no cache)
    prompt_cache_entries: int = 1024
    prompt_cache_mib: float = 64.0

    def __post_init__(self) -> None:
        problems = []
        if not self.model_uri.strip():
            problems.append("model_uri must not be empty")
        if not self.model_name or any(c in self.model_name for c in "/: "):
            problems.append(f"model_name must be non-empty without '/', ':' or spaces, got {self.model_name!r}")
        for name in ("http_port", "grpc_port"):
            if not 0 <= getattr(self, name) <= 65535:
                problems.append(f"{name} must be in [0, 65535], got {getattr(self, name)}")
        if self.enable_grpc and self.grpc_port == self.http_port and self.http_port != 0:
            problems.append(f"grpc_port and http_port must differ, both are {self.http_port}")
        positive = ("max_prompts", "max_images_per_prompt", "max_images_per_request", "max_prompt_chars")
        positive += ("max_body_bytes", "max_connections", "max_batch_images", "max_queued_images")
        problems += [
            f"{name} must be at least 1, got {getattr(self, name)}" for name in positive if getattr(self, name) < 1
        ]
        if self.prompt_cache_entries < 0 or self.prompt_cache_mib < 0:
            problems.append(
                f"prompt_cache_entries and prompt_cache_mib must not be negative, "
                f"got {self.prompt_cache_entries} and {self.prompt_cache_mib}"
            )
        if not 0 <= self.batch_wait_ms <= 1000:
            problems.append(f"batch_wait_ms must be in [0, 1000], got {self.batch_wait_ms}")
        if self.max_images_per_request > self.max_queued_images:
            problems.append(
                f"max_images_per_request ({self.max_images_per_request}) must not exceed max_queued_images "
                f"({self.max_queued_images}), or a request at the limit could never be queued"
            )
        if problems:
            raise ValueError("invalid serve config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return {field.name: getattr(self, field.name) for field in fields(self)}
