"""Run the predictor in kserve's REST server and gRPC server, in one event loop.

kserve's `ModelServer.start` refuses to start before a model is ready and always binds 0.0.0.0
(gRPC [::]). Here the servers start at once with the model registered but not ready (readiness
answers 503, gRPC inference UNAVAILABLE), the model loads in a background thread, and the host is
configurable (127.0.0.1 in tests). Both servers share the loop, so the micro-batcher gathers
requests of both protocols into the same generator calls. A model that fails to load stops the
server with exit status 1, so Kubernetes restarts the pod and shows why in its log.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import kserve
import uvicorn
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.logging import logger
from kserve.model_server import app
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware

from . import http_edge
from .config import ServeConfig
from .grpc_edge import build_grpc_server
from .predictor import XMCGANPredictor

GRPC_GRACE_S = 5


@dataclass
class Servers:
    app: object  # kserve's FastAPI app, with the request gate
    uvicorn_config: uvicorn.Config
    model_server: kserve.ModelServer  # its data plane and repository extension serve both protocols


def build_app(config: ServeConfig, model: XMCGANPredictor) -> Servers:
    """kserve's FastAPI app serving `model`, with the request gate, and its uvicorn config.

    kserve's app is a module global: build it once per process.
    """
    model_server = kserve.ModelServer(http_port=config.http_port, enable_grpc=False, workers=1)
    model_server.register_model(model)
    model.enable_latency_logging = config.access_log  # kserve's line per request: its stages' times
    http_edge.install(app, max_body_bytes=config.max_body_bytes)
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING, model_server.dataplane, model_server.model_repository_extension, config.http_port
    )
    rest.config.host = config.host
    rest.config.limit_concurrency = config.max_connections
    # uvicorn's Config applies access_log when it configures logging, which kserve's RESTServer did
    # before this setting could reach it: apply it again (log_config None: nothing else is redone)
    rest.config.access_log = config.access_log
    rest.config.configure_logging()
    rest.create_application()
    if not config.access_log:  # kserve adds it always, and it does nothing but log each request's time
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
    return Servers(app, rest.config, model_server)


async def run_servers(config: ServeConfig, servers: Servers, http: uvicorn.Server) -> None:
    grpc_server = None
    if config.enable_grpc:  # created in the loop it runs in: grpc.aio binds to the current loop
        model_server = servers.model_server
        grpc_server = build_grpc_server(config, model_server.dataplane, model_server.model_repository_extension)
        await grpc_server.start()
    try:
        await http.serve()  # until SIGTERM / SIGINT, or should_exit
    finally:
        if grpc_server is not None:
            await grpc_server.stop(GRPC_GRACE_S)


def serve(config: ServeConfig) -> int:
    """Serve until stopped; the exit status is 1 when the model could not be loaded."""
    model = XMCGANPredictor(config)
    servers = build_app(config, model)
    http = uvicorn.Server(servers.uvicorn_config)
    load_failed = threading.Event()

    def load() -> None:
        try:
            model.load()
        except Exception:
            logger.exception("could not load the model from %s; stopping", config.model_uri)
            load_failed.set()
            http.should_exit = True

    threading.Thread(target=load, name="model-loader", daemon=True).start()
    # the loop uvicorn would pick (uvloop when installed), as uvicorn.Server.run does
    with asyncio.Runner(loop_factory=servers.uvicorn_config.get_loop_factory()) as runner:
        runner.run(run_servers(config, servers, http))
    model.stop()
    return 1 if load_failed.is_set() else 0
