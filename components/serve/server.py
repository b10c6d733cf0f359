"""Run the predictor in kserve's REST server: its app, routes, dataplane and error handlers.

kserve's `ModelServer.start` refuses to start before a model is ready and always binds 0.0.0.0.
Here the server starts at once with the model registered but not ready (readiness answers 503),
the model loads in a background thread, and the host is configurable (127.0.0.1 in tests). A
model that fails to load stops the server with exit status 1, so Kubernetes restarts the pod and
shows why in its log.
"""

from __future__ import annotations

import threading

import kserve
import uvicorn
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.logging import logger
from kserve.model_server import app
from kserve.protocol.rest.server import RESTServer

from . import gate
from .config import ServeConfig
from .predictor import XMCGANPredictor


def build_app(config: ServeConfig, model: XMCGANPredictor):
    """kserve's FastAPI app serving `model`, with the request gate; returns (app, uvicorn config).

    kserve's app is a module global: build it once per process.
    """
    model_server = kserve.ModelServer(http_port=config.http_port, enable_grpc=False, workers=1)
    model_server.register_model(model)
    gate.install(app, max_body_bytes=config.max_body_bytes)
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING, model_server.dataplane, model_server.model_repository_extension, config.http_port
    )
    rest.config.host = config.host
    rest.config.limit_concurrency = config.max_connections
    rest.create_application()
    return app, rest.config


def serve(config: ServeConfig) -> int:
    """Serve until stopped; the exit status is 1 when the model could not be loaded."""
    model = XMCGANPredictor(config)
    _, uvicorn_config = build_app(config, model)
    server = uvicorn.Server(uvicorn_config)
    load_failed = threading.Event()

    def load() -> None:
        try:
            model.load()
        except Exception:
            logger.exception("could not load the model from %s; stopping", config.model_uri)
            load_failed.set()
            server.should_exit = True

    threading.Thread(target=load, name="model-loader", daemon=True).start()
    server.run()
    model.stop()
    return 1 if load_failed.is_set() else 0
