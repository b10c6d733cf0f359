"""Local files published whole: written beside their final name, flushed, then renamed over it. A reader
(or a step run again after a kill) sees the old file, the new one, or none; never a torn one."""

from __future__ import annotations

import os
from pathlib import Path


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    with open(partial, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def unpublish(path: str | Path) -> None:
    """Remove a previous run's completion marker before this run changes what it vouches for."""
    Path(path).unlink(missing_ok=True)
