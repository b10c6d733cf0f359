"""Cross-request batching: image jobs from concurrent requests share one generator call.

A request becomes one job per image. A single worker task takes jobs in arrival order, up to
`max_batch` of them, and runs the render function on them in one dedicated thread (so model
access is serialised and the event loop stays free for health checks); the render function
gives one result per job. Requests that arrive while a batch renders make up the next one. A
batch waits at most `wait_s` after its first job for more, and only while other requests are in
the server but not queued (announced with `expecting()`, not yet submitted or just answered):
a lone client never waits for company that is not coming, concurrent ones fill the batch. A request
larger than the room left in a batch is split across batches. Jobs waiting in total are bounded
by `max_queued`: beyond it `submit` raises `QueueFull` at once instead of letting the queue grow.

Batching is safe because the generator is batch-invariant: an image depends only on its job
(prompt, seed, index), never on what else shares the call.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from .metrics import BATCH_IMAGES, REJECTED_REQUESTS, STAGE_SECONDS


@dataclass(frozen=True)
class ImageJob:
    """One image: made from (prompt, seed, index) alone, delivered at `size` pixels."""

    prompt: str
    seed: int
    index: int  # the image's index among its prompt's images
    size: int


class QueueFull(RuntimeError):
    pass


@dataclass(eq=False)
class _Request:
    jobs: Sequence[ImageJob]
    future: asyncio.Future
    submitted: float  # time.perf_counter() at submit
    results: list = field(default_factory=list)  # rendered so far, in job order
    taken: int = 0  # jobs handed to a batch so far


class MicroBatcher:
    def __init__(
        self,
        render: Callable[[Sequence[ImageJob]], Sequence],
        *,
        max_batch: int,
        wait_s: float,
        max_queued: int,
        thread: ThreadPoolExecutor | None = None,
    ):
        """`thread`: the one thread that runs the model (the server's, which also loaded it; default a new one)."""
        self.render = render
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.max_queued = max_queued
        self._waiting: deque[_Request] = deque()
        self._queued = 0  # jobs submitted but not yet taken into a batch
        self._expected = 0  # requests in the server (see expecting), queued or not
        self._thread = thread or ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
        self._worker: asyncio.Task | None = None
        self._arrived: asyncio.Event | None = None

    @property
    def queued(self) -> int:
        return self._queued

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Around a request's whole stay in the server, from before it is validated until it is answered."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1

    def _others_coming(self) -> bool:
        return self._expected > len(self._waiting)

    async def submit(self, jobs: Sequence[ImageJob]) -> list:
        """The render results of `jobs`, in job order."""
        if not jobs:
            raise ValueError("submit needs at least one job")
        if self._queued + len(jobs) > self.max_queued:
            REJECTED_REQUESTS.inc()
            raise QueueFull(f"{self._queued} images are queued; the limit is {self.max_queued}")
        self._start_worker()
        request = _Request(jobs=jobs, future=asyncio.get_running_loop().create_future(), submitted=time.perf_counter())
        self._waiting.append(request)
        self._queued += len(jobs)
        self._arrived.set()
        return await request.future

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)

    def _start_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self.wait_s
            while self._queued < self.max_batch and self._others_coming() and (remaining := deadline - loop.time()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            jobs = [job for request, start, stop in batch for job in request.jobs[start:stop]]
            BATCH_IMAGES.observe(len(jobs))
            now = time.perf_counter()
            for request, start, _ in batch:
                if start == 0:
                    STAGE_SECONDS.labels("queue").observe(now - request.submitted)
            try:
                results = await loop.run_in_executor(self._thread, self.render, jobs)
            except Exception as error:  # every request in the failed batch fails; the worker carries on
                for request, _, _ in batch:
                    self._fail(request, error)
                continue
            offset = 0
            for request, start, stop in batch:
                request.results += results[offset : offset + stop - start]
                offset += stop - start
                if stop == len(request.jobs) and not request.future.done():
                    request.future.set_result(request.results)

    def _take(self) -> list[tuple[_Request, int, int]]:
        """Up to max_batch jobs from the head of the queue, as (request, first job, end job) spans."""
        batch, room = [], self.max_batch
        while self._waiting and room:
            request = self._waiting[0]
            if request.future.done():  # cancelled by its caller: drop its remaining jobs
                self._waiting.popleft()
                self._queued -= len(request.jobs) - request.taken
                continue
            start = request.taken
            stop = min(len(request.jobs), start + room)
            batch.append((request, start, stop))
            request.taken, room = stop, room - (stop - start)
            self._queued -= stop - start
            if stop == len(request.jobs):
                self._waiting.popleft()
        return batch

    def _fail(self, request: _Request, error: Exception) -> None:
        if request in self._waiting:  # partly taken: its remaining jobs would be wasted work
            self._waiting.remove(request)
            self._queued -= len(request.jobs) - request.taken
        if not request.future.done():
            request.future.set_exception(error)
