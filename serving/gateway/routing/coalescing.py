"""Concurrent predictions of one process share model-server calls.

At most ``max_calls`` Predict calls per model version are in flight from a process;
requests arriving meanwhile queue, and the next free call carries all of them (up
to ``max_rows`` rows) as one batch. A request that finds a free call is sent at
once: nothing waits for company, so latency at low load is unchanged, while under
load the number of calls, and their fixed cost in the gateway and the model
server, drops by the size of the shared batches. The model server still batches
the calls of all gateway processes together (TF Serving's ``--enable_batching``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from serving.gateway.errors import GatewayError, ModelServerFailure, ModelServerTimeout
from serving.gateway.observability import metrics

# (model_name, version, ids, timeout, request_ids) -> (probabilities, served version)
PredictCall = Callable[[str, int, np.ndarray, float, Sequence[str]], tuple[np.ndarray, int]]


@dataclass
class _Request:
    ids: np.ndarray
    deadline: float  # time.monotonic()
    request_ids: Sequence[str]
    woken: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # this request's thread sends the next call
    result: tuple[np.ndarray, int] | None = None
    error: GatewayError | None = None


class Coalescer:
    def __init__(self, call: PredictCall, max_calls: int, max_rows: int) -> None:
        self._call = call
        self._max_calls = max_calls
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._queued: dict[tuple[str, int], deque[_Request]] = {}
        self._calls: dict[tuple[str, int], int] = {}  # calls in flight

    def predict(
        self, model_name: str, version: int, ids: np.ndarray, timeout: float, request_ids: Sequence[str] = (),
    ) -> tuple[np.ndarray, int]:
        key = (model_name, version)
        request = _Request(ids, time.monotonic() + timeout, request_ids)
        with self._lock:
            if self._calls.get(key, 0) < self._max_calls:
                self._calls[key] = self._calls.get(key, 0) + 1
                request.leads = True
            else:
                self._queued.setdefault(key, deque()).append(request)
        if not request.leads:
            self._wait(key, request)
        if request.leads:
            self._lead(key, request)
        if request.error is not None:
            raise copy.copy(request.error)  # each thread raises its own instance
        return request.result

    def _wait(self, key: tuple[str, int], request: _Request) -> None:
        """Until a call answered this request or its thread is to send the next call."""
        if request.woken.wait(max(0.0, request.deadline - time.monotonic())):
            return
        with self._lock:
            queue = self._queued.get(key)
            if queue is not None and request in queue:
                queue.remove(request)
                request.error = ModelServerTimeout(f"{key[0]} version {key[1]}: no model-server call was free in time")
                return
        request.woken.wait()  # already taken into a call, which has its own deadline

    def _lead(self, key: tuple[str, int], request: _Request) -> None:
        batch, rows = [request], request.ids.shape[0]
        with self._lock:
            queue = self._queued.get(key, deque())
            while queue and rows + queue[0].ids.shape[0] <= self._max_rows:
                batch.append(queue.popleft())
                rows += batch[-1].ids.shape[0]
        try:
            self._send(key, batch)
        finally:
            with self._lock:
                queue = self._queued.get(key)
                if queue:  # hand this call's slot to the oldest waiting request
                    successor = queue.popleft()
                    successor.leads = True
                    successor.woken.set()
                else:
                    self._calls[key] -= 1

    def _send(self, key: tuple[str, int], batch: list[_Request]) -> None:
        ids = batch[0].ids if len(batch) == 1 else np.concatenate([r.ids for r in batch])
        metrics.MODEL_CALL_ROWS.observe(ids.shape[0])
        timeout = max(0.001, min(r.deadline for r in batch) - time.monotonic())
        try:
            request_ids = [given for r in batch for given in r.request_ids]
            probabilities, served = self._call(key[0], key[1], ids, timeout, request_ids)
        except GatewayError as error:
            for r in batch:
                r.error = error
        except Exception:
            for r in batch[1:]:
                r.error = ModelServerFailure(f"{key[0]} version {key[1]}: the shared model-server call failed")
            raise
        else:
            start = 0
            for r in batch:
                end = start + r.ids.shape[0]
                r.result = (probabilities[start:end], served)
                start = end
        finally:
            for r in batch[1:]:
                r.woken.set()
