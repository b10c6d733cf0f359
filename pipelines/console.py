"""What a local pipeline run shows on the terminal: one line per step, a bar on long steps, the log files.

kfp's local runner prints everything: its own task messages, every line each task writes, and
each task's outputs. `StepConsole` stands in for sys.stdout while the pipeline runs: every line
goes to the run's log (and the running step's own log file); the terminal gets a line when a step
starts and one when it ends (status, wall time, the step's key figure), a progress bar while a
step reports `done/total` counts (tqdm's format), and, when a step fails, its last lines and the
path of its log.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '([\w-]+)'")
FINISHED = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
CACHED = re.compile(r"Task '?([\w-]+)'? cache hit")
PROGRESS = re.compile(r"(?:^|\s)([\w ]*?):?\s*\d+%\|.*?\|\s*([\d,.]+k?)/([\d,.]+k?)\s")
FAILURE_LINES = 25


def _count(text: str) -> float:
    text = text.replace(",", "")
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


class StepConsole:
    """A file-like object for sys.stdout during a run (see the module docstring).

    `key_figure(step, index)` returns the short text shown when a step succeeds (e.g. "2200 images
    in = 2200 written + 0 rejected"), or "": `index` counts the step's earlier endings, since kfp runs
    a ParallelFor's iterations of one step at the same time (their lines interleave).
    """

    def __init__(
        self,
        terminal: TextIO,
        log_dir: Path,
        *,
        key_figure: Callable[[str, int], str] = lambda step, index: "",
    ):
        self.terminal, self.log_dir, self.key_figure = terminal, log_dir, key_figure
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = open(log_dir / "pipeline.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.step: str | None = None
        self.step_log: TextIO | None = None
        self.step_started = 0.0
        # step -> (start time, log file) of each of its running tasks, oldest first; lines go to the newest's log
        self.running: dict[str, deque[tuple[float, TextIO]]] = {}
        self.ended: dict[str, int] = {}  # step -> how many of its tasks have ended (or were reused)
        self.recent: deque[str] = deque(maxlen=FAILURE_LINES)
        self.counts: dict[str, int] = {}
        self.partial = ""
        self.bar_shown = False
        self.interactive = terminal.isatty()
        self.last_bar = 0.0

    # file-like interface -------------------------------------------------------------------
    def write(self, text: str) -> int:
        self.partial += text
        *lines, self.partial = re.split(r"[\r\n]", self.partial)
        for line in lines:
            self._line(ANSI.sub("", line))
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        if self.step_log:
            self.step_log.flush()

    def isatty(self) -> bool:
        return False  # what runs inside writes plain lines, not terminal control codes

    def close(self) -> None:
        if self.partial:
            self._line(ANSI.sub("", self.partial))
        self._clear_bar()
        for tasks in self.running.values():
            for _, log in tasks:
                log.close()
        self.log.close()

    # lines -----------------------------------------------------------------------------------
    def _line(self, line: str) -> None:
        if not line.strip():
            return
        self.log.write(line + "\n")
        if started := STARTED.search(line):
            self._start(started.group(1))
        elif finished := FINISHED.search(line):
            self._finish(finished.group(1), finished.group(2))
        elif cached := CACHED.search(line):
            step = cached.group(1)
            figure = self.key_figure(step, self._ended(step))
            self._print(f"  ok {self._label(step):<17}  cached   {figure}".rstrip())
        elif self.step:
            self.step_log.write(line + "\n")
            self.recent.append(line)
            if progress := PROGRESS.search(line):
                self._bar(_count(progress.group(2)), _count(progress.group(3)), progress.group(1).strip())

    def _label(self, step: str) -> str:
        return step.replace("-", " ")

    def _start(self, step: str) -> None:
        self.counts[step] = self.counts.get(step, 0) + 1
        name = step if self.counts[step] == 1 else f"{step}-{self.counts[step]}"
        self.step, self.step_started = step, time.perf_counter()
        self.last_bar = self.step_started
        self.step_log = open(self.log_dir / f"{name}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed at its end
        self.running.setdefault(step, deque()).append((self.step_started, self.step_log))
        self.recent.clear()
        self._print(f"  > {self._label(step)} ...", transient=True)

    def _ended(self, step: str) -> int:
        """The index of this ending among the step's (0 for its first task to end), counted."""
        self.ended[step] = self.ended.get(step, 0) + 1
        return self.ended[step] - 1

    def _finish(self, step: str, status: str) -> None:
        started, log = self.running[step].popleft() if self.running.get(step) else (self.step_started, None)
        seconds = time.perf_counter() - started
        log_path = Path(log.name) if log else self.log_dir / "pipeline.log"
        if log:
            log.close()
        if log is self.step_log:  # lines go on to the newest task still running, if any
            still = [(t, name, f) for name, tasks in self.running.items() for t, f in tasks]
            _, self.step, self.step_log = max(still, key=lambda task: task[0]) if still else (0.0, None, None)
        index = self._ended(step)
        if status == "SUCCESS":
            figure = self.key_figure(step, index)
            self._print(f"  ok {self._label(step):<17} {seconds:7.1f} s   {figure}".rstrip())
        else:
            self._print(f"  FAILED {self._label(step)} after {seconds:.1f} s; its last lines:")
            for line in self.recent:
                self._print(f"      {line}")
            self._print(f"  full log: {log_path}")

    # terminal --------------------------------------------------------------------------------
    def _print(self, text: str, *, transient: bool = False) -> None:
        self._clear_bar()
        if transient and self.interactive:
            self.terminal.write(text)
            self.bar_shown = True
        elif not transient:
            self.terminal.write(text + "\n")
        self.terminal.flush()

    def _clear_bar(self) -> None:
        if self.bar_shown:
            self.terminal.write("\r\x1b[2K")
            self.bar_shown = False

    def _bar(self, done: float, total: float, what: str) -> None:
        if total <= 0:
            return
        now = time.perf_counter()
        fraction = min(done / total, 1.0)
        elapsed = now - self.step_started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        text = (
            f"  > {self._label(self.step)}: {what or 'progress'} [{'#' * int(fraction * 30):<30}] "
            f"{int(done):,}/{int(total):,} ({fraction:.0%}), {elapsed / 60:.1f} min, about {eta / 60:.1f} min left"
        )
        if self.interactive:
            self._clear_bar()
            self.terminal.write(text[:160])
            self.bar_shown = True
            self.terminal.flush()
        elif now - self.last_bar > 60:  # a log or CI: a line a minute at most
            self.last_bar = now
            self._print(text)


def attach(log_dir: Path, **callbacks) -> StepConsole:
    """Route sys.stdout and sys.stderr through a StepConsole (callbacks: see it); `detach` restores them."""
    console = StepConsole(sys.stdout, log_dir, **callbacks)
    console.saved = (sys.stdout, sys.stderr)
    sys.stdout = sys.stderr = console
    # kfp logs a cache hit outside its per-task logging setup (on the root logger at INFO): hear it too
    console.handler = logging.StreamHandler(console)
    console.handler.setLevel(logging.INFO)
    logging.getLogger().addHandler(console.handler)
    return console


def detach(console: StepConsole) -> None:
    sys.stdout, sys.stderr = console.saved
    logging.getLogger().removeHandler(console.handler)
    console.close()
