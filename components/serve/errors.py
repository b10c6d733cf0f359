"""What a client is told when a request fails, the same over HTTP (http_edge.py) and gRPC (grpc_edge.py).

Validation errors are `kserve.errors.InvalidInput` with a "<field>: <problem>" message, raised by
protocol.py; the messages here are for the other failures.
"""

from __future__ import annotations

import uuid

from kserve.logging import logger

from .batching import QueueFull

RETRY_AFTER_S = 1
REPOSITORY_DISABLED = "the model repository API is disabled: this server serves one model, loaded at start"


def busy_message(error: QueueFull) -> str:
    return f"server busy: {error}; retry after {RETRY_AFTER_S} s"


def internal_error_message(what: str) -> str:
    """Log the exception being handled with a reference, and return a message that names only the reference."""
    reference = uuid.uuid4().hex[:12]
    logger.exception("unhandled error serving %s (reference %s)", what, reference)
    return f"internal server error (reference {reference})"
