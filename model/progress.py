"""Progress bars that read well on a terminal and in a log."""

from __future__ import annotations

import sys

from tqdm import tqdm


class _Lines:
    """A stream that ends each of tqdm's in-place updates with a newline: through a pipe (a
    pipeline step's log) every update is then a line of its own instead of one endless line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(text.replace("\r", "\n") if text.strip() else "")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(**options) -> tqdm:
    """tqdm on stderr; where stderr is no terminal, a line every 10 s at most."""
    if sys.stderr.isatty():
        return tqdm(dynamic_ncols=True, **options)
    interval = max(options.pop("mininterval", 0.0), 10.0)
    return tqdm(**options, mininterval=interval, file=_Lines(sys.stderr), ncols=100)
