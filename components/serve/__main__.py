"""python -m components.serve [--model-uri URI] [options]: serve the generator over KServe V1 and V2, REST and gRPC."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import add_config_arguments, config_from_arguments, load_params
from .config import ServeConfig

HELP = {
    "model_uri": "a model folder, models:/NAME@ALIAS or models:/NAME/VERSION",
    "tracking_uri": "MLflow tracking URI for models:/ URIs (None: the MLFLOW_TRACKING_URI environment variable)",
    "model_name": "name on the endpoint paths /v1/models/NAME:predict and /v2/models/NAME/infer",
    "host": "address to listen on (0.0.0.0 in a container, 127.0.0.1 for a local test)",
    "http_port": "HTTP port",
    "enable_grpc": "serve V2 (Open Inference Protocol) over gRPC too",
    "grpc_port": "gRPC port",
    "device": "torch device for the generator and text encoder (cpu, cuda, cuda:1)",
    "max_prompts": "most prompts in one request",
    "max_images_per_prompt": "most images per prompt",
    "max_images_per_request": "most images in one request (prompts x images per prompt)",
    "max_prompt_chars": "longest prompt in characters",
    "max_body_bytes": "largest request body in bytes (413 beyond)",
    "max_connections": "most open connections and in-flight requests (503 beyond)",
    "max_batch_images": "most images in one generator call, gathered across requests",
    "batch_wait_ms": "longest wait of a batch for more requests while others are in the server (milliseconds)",
    "max_queued_images": "most images waiting across requests before new requests get 503",
    "prompt_cache_entries": "most prompt embeddings kept for prompts seen before (0: no cache)",
    "prompt_cache_mib": "most memory of the kept prompt embeddings, in MiB",
}


def parse_config(argv: list[str] | None = None) -> ServeConfig:
    parser = argparse.ArgumentParser(prog="python -m components.serve", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--params", type=Path, help="a params.yaml whose `serve` section gives defaults")
    add_config_arguments(parser, ServeConfig, HELP)
    args = parser.parse_args(argv)
    return config_from_arguments(parser, args, ServeConfig, section=load_params(args.params, "serve"))


def main(argv: list[str] | None = None) -> None:
    config = parse_config(argv)
    # MKL's strict reproducible mode, read when MKL first runs: with it a batched image equals the
    # same image made alone (the predictor checks this at load; see rendering.batch_invariant_math)
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    del sys.argv[1:]  # kserve parses sys.argv when imported; these options are ours, not its
    from .server import serve

    sys.exit(serve(config))


if __name__ == "__main__":
    main()
