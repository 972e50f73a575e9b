"""Server-side batching, with the semantics of TF Serving's basic batch scheduler.

Concurrent requests for the same model version and signature are queued and run
together: a batch starts when it holds ``max_batch_size`` rows or when its oldest
request has waited ``batch_timeout_micros``. The queue holds at most
``max_enqueued_batches`` full batches; beyond that a request is refused at once
with UNAVAILABLE instead of waiting without bound. Batches are padded up to the
next of ``allowed_batch_sizes`` (with copies of the first row, as TF Serving does)
so the model only ever sees a few distinct shapes.

At most ``num_batch_threads`` batches run at once. With ``batch_timeout_micros`` 0, a
request that finds the queue empty and a batch slot free runs at once on the thread
that submitted it: handing it to a batch thread and waking the caller again would cost
two thread switches and no batching (there is nothing to batch it with).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from serving.model_server.config import BatchingOptions
from serving.model_server.errors import InvalidArgument, Unavailable

Tensors = dict[str, np.ndarray]


@dataclass
class _Task:
    inputs: Tensors
    rows: int
    enqueued: float = field(default_factory=time.monotonic)
    result: Future = field(default_factory=Future)


class BatchScheduler:
    def __init__(
        self,
        run: Callable[[Tensors], Tensors],
        options: BatchingOptions,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self._run = run
        self._options = options
        self._on_batch = on_batch  # (rows, padded size) of every batch run, for metrics
        self._capacity = options.max_batch_size * options.max_enqueued_batches
        self._queue: deque[_Task] = deque()
        self._queued_rows = 0
        self._running = 0  # batches running, on batch threads or inline
        self._closed = False
        self._condition = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Tensors) -> Tensors:
        """Run ``inputs`` as part of a batch; blocks until its outputs are ready."""
        rows = next(iter(inputs.values())).shape[0] if inputs else 0
        if rows > self._options.max_batch_size:
            raise InvalidArgument(
                f"Task size {rows} is larger than maximum input batch size {self._options.max_batch_size}"
            )
        task = _Task(inputs, rows)
        with self._condition:
            if self._closed:
                raise Unavailable("the model version is being unloaded")
            if self._queued_rows + rows > self._capacity:
                raise Unavailable("The batch scheduling queue to which this task was submitted is full")
            inline = self._can_run_inline()
            if inline:
                self._running += 1
            else:
                self._queue.append(task)
                self._queued_rows += rows
                self._condition.notify()
        if inline:
            try:
                self._run_batch([task])
            finally:
                self._batch_done()
        return task.result.result()

    def _can_run_inline(self) -> bool:
        return (self._options.batch_timeout_micros == 0 and not self._queue
                and self._running < self._options.num_batch_threads)

    def _batch_done(self) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify_all()  # a batch thread may take the queue's next batch

    def close(self) -> None:
        """Stop accepting work; queued tasks still run. Returns when no batch is running,
        on a batch thread or inline on a caller's thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()
        with self._condition:
            while self._running:
                self._condition.wait()

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            finally:
                self._batch_done()

    def _next_batch(self) -> list[_Task] | None:
        max_rows = self._options.max_batch_size
        with self._condition:
            while not self._queue or self._running >= self._options.num_batch_threads:
                if self._closed and not self._queue:
                    return None
                self._condition.wait()
            deadline = self._queue[0].enqueued + self._options.batch_timeout_micros / 1e6
            while self._queued_rows < max_rows and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch, rows = [], 0
            while self._queue and rows + self._queue[0].rows <= max_rows:
                task = self._queue.popleft()
                batch.append(task)
                rows += task.rows
            self._queued_rows -= rows
            self._running += 1
            return batch

    def _run_batch(self, batch: list[_Task]) -> None:
        rows = sum(task.rows for task in batch)
        try:
            size = self._padded_size(rows)
            merged = {
                alias: _pad(np.concatenate([task.inputs[alias] for task in batch]), size)
                for alias in batch[0].inputs
            }
            outputs = self._run(merged)
            if self._on_batch:
                self._on_batch(rows, size)
        except Exception as error:  # every waiting request must get an answer
            for task in batch:
                task.result.set_exception(error)
            return
        start = 0
        for task in batch:
            end = start + task.rows
            task.result.set_result({alias: value[start:end] for alias, value in outputs.items()})
            start = end

    def _padded_size(self, rows: int) -> int:
        sizes = self._options.allowed_batch_sizes
        if not sizes:
            return rows
        return sizes[bisect.bisect_left(sizes, rows)]


def _pad(array: np.ndarray, size: int) -> np.ndarray:
    missing = size - array.shape[0]
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[:1], missing, axis=0)])
