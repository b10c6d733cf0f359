"""Serving configuration: where the model comes from, where to listen, and every limit on a request.

Each limit bounds memory or time per request or in total, so no request can make the server
allocate without bound: the body size bounds everything parsed, the image limits bound one
request's work, the queue depth bounds work waiting across requests, and the connection limit
bounds bodies being read at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.settings import DictConfig, setting

DEFAULT_MODEL_URI = "models:/xmcgan@champion"


@dataclass(frozen=True)
class ServeConfig(DictConfig):
    # where the generator comes from: a local model folder, models:/NAME@ALIAS or models:/NAME/VERSION
    model_uri: str = setting(DEFAULT_MODEL_URI, help="a model folder, models:/NAME@ALIAS or models:/NAME/VERSION")
    # MLflow tracking URI for models:/ URIs; None falls back to MLFLOW_TRACKING_URI, as MLflow does
    tracking_uri: str | None = setting(
        None, help="MLflow tracking URI for models:/ URIs (None: the MLFLOW_TRACKING_URI environment variable)"
    )
    # the name on the endpoint paths: /v1/models/NAME:predict, /v2/models/NAME/infer
    model_name: str = setting(
        "xmcgan", help="name on the endpoint paths /v1/models/NAME:predict and /v2/models/NAME/infer"
    )
    host: str = setting("0.0.0.0", help="address to listen on (0.0.0.0 in a container, 127.0.0.1 for a local test)")
    http_port: int = setting(8080, help="HTTP port")
    # the Open Inference Protocol's gRPC endpoint (V2), on the same host, beside HTTP
    enable_grpc: bool = setting(True, help="serve V2 (Open Inference Protocol) over gRPC too")
    grpc_port: int = setting(8081, help="gRPC port")
    # uvicorn's access log and kserve's per-request timing lines; /metrics counts requests and times
    # their stages either way. Off by default: formatting and writing them took about a fifth of the
    # event loop's time per request (py-spy of the server at 1 client, a 4 ms render on 2 cores)
    access_log: bool = setting(False, help="log a line per request (uvicorn's access log, kserve's timings)")
    device: str = setting("cpu", help="torch device for the generator and text encoder (cpu, cuda, cuda:1)")
    # request limits
    max_prompts: int = setting(8, help="most prompts in one request")
    max_images_per_prompt: int = setting(4, help="most images per prompt")
    max_images_per_request: int = setting(16, help="most images in one request (prompts x images per prompt)")
    max_prompt_chars: int = setting(1000, help="longest prompt in characters")
    max_body_bytes: int = setting(64 * 1024, help="largest request body in bytes (413 beyond)")
    max_connections: int = setting(128, help="most open connections and in-flight requests (503 beyond)")
    # batching across requests: one generator call takes up to max_batch_images images, gathering
    # requests that arrive within batch_wait_ms of the first; at most max_queued_images wait in
    # total, beyond which requests are refused with 503 (the client retries after Retry-After)
    max_batch_images: int = setting(8, help="most images in one generator call, gathered across requests")
    batch_wait_ms: float = setting(
        3.0, help="longest wait of a batch for more requests while others are in the server (milliseconds)"
    )
    max_queued_images: int = setting(64, help="most images waiting across requests before new requests get 503")
    # prompt embeddings kept for prompts seen before (least recently used dropped first): a hit skips
    # the text encoder; bounded by both entries and memory (0 entries: no cache)
    prompt_cache_entries: int = setting(1024, help="most prompt embeddings kept for prompts seen before (0: no cache)")
    prompt_cache_mib: float = setting(64.0, help="most memory of the kept prompt embeddings, in MiB")

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
