"""The gRPC edge: the Open Inference Protocol's `inference.GRPCInferenceService` on its own port.

kserve's servicer answers V2 over gRPC through the same data plane and predictor as REST, so a
request is validated, batched and rendered exactly as over HTTP. What the HTTP gate does for REST
this edge does for gRPC, with the same messages:

- errors as status codes: a validation error is INVALID_ARGUMENT, a full queue UNAVAILABLE (with
  a `retry-after` trailer, as the REST 503 has Retry-After), a model not loaded yet UNAVAILABLE,
  an unknown model NOT_FOUND, and any other exception INTERNAL with only a log reference;
- the model repository API is closed (PERMISSION_DENIED), as it is over REST;
- an inference before the model is loaded is refused: kserve's data plane would otherwise call
  `load()` again, inside the event loop;
- messages are bounded by `max_body_bytes` (gRPC answers RESOURCE_EXHAUSTED beyond) and calls in
  progress by `max_connections`; the port is not shared (SO_REUSEPORT off), so a second server on
  the same port fails to start instead of taking half the traffic.
"""

from __future__ import annotations

import grpc
from grpc import aio
from grpc_interceptor import AsyncExceptionToStatusInterceptor
from grpc_interceptor.exceptions import GrpcException, PermissionDenied
from kserve.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.servicer import InferenceServicer

from .batching import QueueFull
from .config import ServeConfig
from .errors import REPOSITORY_DISABLED, RETRY_AFTER_S, busy_message, internal_error_message

# client-facing errors and their codes, each answered with its own message (kserve's interceptor
# maps most of these too, but reads a `reason` that ModelNotReady does not have)
STATUS_CODES = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (UnsupportedProtocol, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    ((ModelNotReady, ServerNotReady, ServerNotLive), grpc.StatusCode.UNAVAILABLE),
    (NotImplementedError, grpc.StatusCode.UNIMPLEMENTED),
)


class Servicer(InferenceServicer):
    async def ModelInfer(self, request, context):
        if not await self._data_plane.model_ready(request.model_name):  # unknown names raise ModelNotFound
            raise ModelNotReady(request.model_name)
        return await super().ModelInfer(request, context)

    async def RepositoryModelLoad(self, request, context):
        raise PermissionDenied(REPOSITORY_DISABLED)

    async def RepositoryModelUnload(self, request, context):
        raise PermissionDenied(REPOSITORY_DISABLED)


class StatusInterceptor(AsyncExceptionToStatusInterceptor):
    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        if isinstance(ex, QueueFull):
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, busy_message(ex), trailing_metadata=(("retry-after", str(RETRY_AFTER_S)),)
            )
        if isinstance(ex, GrpcException):
            await context.abort(ex.status_code, ex.details)
        for kinds, code in STATUS_CODES:
            if isinstance(ex, kinds):
                await context.abort(code, str(ex))
        await context.abort(grpc.StatusCode.INTERNAL, internal_error_message(f"gRPC {method_name}"))


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_grpc_server(config: ServeConfig, data_plane, model_repository_extension) -> aio.Server:
    """The gRPC server for `data_plane`, bound to config.host:config.grpc_port (start it in the serving loop)."""
    server = aio.server(
        interceptors=(StatusInterceptor(),),
        maximum_concurrent_rpcs=config.max_connections,
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", config.max_body_bytes)],
    )
    grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        Servicer(data_plane, model_repository_extension), server
    )
    server.add_insecure_port(listen_address(config.host, config.grpc_port))  # raises if it cannot bind
    return server
