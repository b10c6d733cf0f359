"""The HTTP edge of the server: what may reach the model, and what a client sees of errors.

`RequestGate` is an ASGI middleware in front of kserve's routes. It closes kserve's model
repository API (load and unload by any client; 403), bounds every request body
(413 beyond `max_body_bytes`, counted while streaming, so a missing or false Content-Length does
not help), and on the inference routes requires `application/json` (415) and well-formed JSON
(400) before kserve parses it, so both protocols answer alike. It also turns any unexpected
exception into a 500 whose body carries only a reference to the server log, never a traceback or
an internal message. The exception handlers give the remaining errors the same `{"error": ...}`
shape: a full queue is 503 with Retry-After, a V2 body that fails kserve's schema is 400.
"""

from __future__ import annotations

import re

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput

from .batching import QueueFull
from .errors import REPOSITORY_DISABLED, RETRY_AFTER_S, busy_message, internal_error_message
from .protocol import check_v2_envelope, json_type

V1_INFER = re.compile(r"^/v1/models/[^/]+:predict$")
V2_INFER = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$")
# kserve's model repository extension lets any client unload the model: this server serves one
# model, loaded at start, so the extension is closed
REPOSITORY = re.compile(r"^/v2/repository(/|$)")


class Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def json_message(status: int, content: dict, headers: dict[str, str] | None = None) -> list[dict]:
    body = orjson.dumps(content)
    header_list = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    header_list += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": header_list},
        {"type": "http.response.body", "body": body},
    ]


async def read_body(scope, receive, limit: int) -> bytes:
    """The whole request body, refusing (413) anything longer than `limit` bytes."""
    headers = dict(scope["headers"])
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"request body is {int(declared)} bytes; the limit is {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejected(400, "client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def check_json_request(path: str, headers: dict[bytes, bytes], body: bytes) -> None:
    content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if content_type != "application/json":
        got = repr(content_type) if content_type else "none"
        raise Rejected(415, f"Content-Type must be application/json, got {got}")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Rejected(400, f"malformed JSON body: {error}") from None
    if V2_INFER.match(path):
        try:
            check_v2_envelope(parsed)
        except InvalidInput as error:
            raise Rejected(400, str(error)) from None


class RequestGate:
    def __init__(self, app, *, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        response_started = False

        async def send_tracked(message):
            nonlocal response_started
            response_started |= message["type"] == "http.response.start"
            await send(message)

        try:
            if REPOSITORY.match(scope["path"]):
                raise Rejected(403, REPOSITORY_DISABLED)
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body = await read_body(scope, receive, self.max_body_bytes)
                if V1_INFER.match(scope["path"]) or V2_INFER.match(scope["path"]):
                    headers = dict(scope["headers"])
                    check_json_request(scope["path"], headers, body)
                    # kserve's V1 decoder passes any other spelling (e.g. with a charset) through undecoded
                    scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-type"])
                    scope["headers"].append((b"content-type", b"application/json"))
                receive = replay(body, receive)
            await self.app(scope, receive, send_tracked)
        except Rejected as rejection:
            for message in json_message(rejection.status, {"error": rejection.message}):
                await send(message)
        except Exception:
            error = internal_error_message(f"{scope['method']} {scope['path']}")
            if response_started:
                raise
            for message in json_message(500, {"error": error}):
                await send(message)


def replay(body: bytes, receive):
    """A `receive` that yields the already-read body once, then defers to the real one (disconnects)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive_again():
        return pending.pop() if pending else await receive()

    return receive_again


async def queue_full_handler(_, error: QueueFull) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"error": busy_message(error)},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


# pydantic names each alternative of a union in the error location; kserve's request parameters
# are float | int | bool | str, and its request body is InferenceRequest | bytes
UNION_TAGS = {"float": "number", "int": "integer", "bool": "boolean", "str": "string"}
WRAPPERS = ("body", "InferenceRequest")


def json_path(parts: list) -> str:
    """['inputs', 0, 'shape'] -> inputs[0].shape"""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def schema_problems(errors: list[dict]) -> list[str]:
    """kserve's V2 request-model errors as '<field>: <problem>', one per field."""
    problems: dict[str, str] = {}
    accepted: dict[str, list[str]] = {}
    for error in errors:
        parts = [p for p in error["loc"] if p not in WRAPPERS]
        if parts[:1] == ["bytes"]:  # the raw-bytes alternative, taken only with binary extensions
            continue
        if parts and parts[-1] in UNION_TAGS:
            path = json_path(parts[:-1])
            accepted.setdefault(path, []).append(UNION_TAGS[parts[-1]])
            problems[path] = f"got {json_type(error.get('input'))}"
        else:
            problems.setdefault(json_path(parts), error["msg"])
    for path, types in accepted.items():
        problems[path] = f"must be a {', '.join(types[:-1])} or {types[-1]}, {problems[path]}"
    return [f"{path}: {problem}" for path, problem in problems.items()]


async def request_validation_handler(_, error: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=400, content={"error": "; ".join(schema_problems(list(error.errors()))[:5])})


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    """Put the gate and the error handlers on kserve's app (before kserve adds its own)."""
    app.add_middleware(RequestGate, max_body_bytes=max_body_bytes)
    app.add_exception_handler(QueueFull, queue_full_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
