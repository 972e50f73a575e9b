"""The model server's batch scheduler in-process, with a model that records its batches."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from harness.processes import wait_until
from serving.model_server.batching import BatchScheduler
from serving.model_server.config import BatchingOptions
from serving.model_server.errors import ServingError


class RecordingModel:
    """Doubles its input, slowly, and records every batch it was given."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.batches: list[int] = []
        self.seconds = seconds
        self.called = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, inputs):
        self.called.set()
        self.release.wait()
        self.batches.append(inputs["x"].shape[0])
        time.sleep(self.seconds)
        return {"y": inputs["x"] * 2}


def options(**overrides) -> BatchingOptions:
    values = dict(max_batch_size=16, batch_timeout_micros=0, max_enqueued_batches=2, num_batch_threads=1,
                  allowed_batch_sizes=())
    return BatchingOptions(**{**values, **overrides})


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    model = RecordingModel()
    scheduler = BatchScheduler(model, options())
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: scheduler.submit({"x": np.full((1, 3), i)}), range(12)))
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full((1, 3), 2 * i))
    # With one batch thread busy, the queue fills: far fewer batches than requests.
    assert sum(model.batches) == 12 and len(model.batches) < 12
    scheduler.close()


def test_batches_are_padded_to_allowed_sizes():
    model = RecordingModel(seconds=0)
    scheduler = BatchScheduler(model, options(allowed_batch_sizes=(4, 8, 16)))
    result = scheduler.submit({"x": np.arange(10).reshape(5, 2)})
    assert model.batches == [8]
    np.testing.assert_array_equal(result["y"], np.arange(10).reshape(5, 2) * 2)
    scheduler.close()


def test_a_lone_request_does_not_wait_with_timeout_zero_and_waits_otherwise():
    for timeout_micros, at_least in ((0, 0.0), (100_000, 0.1)):
        scheduler = BatchScheduler(RecordingModel(seconds=0), options(batch_timeout_micros=timeout_micros))
        started = time.monotonic()
        scheduler.submit({"x": np.ones((1, 1))})
        elapsed = time.monotonic() - started
        assert at_least <= elapsed < at_least + 0.15, (timeout_micros, elapsed)
        scheduler.close()


def test_full_queue_and_oversized_requests_are_refused_at_once():
    model = RecordingModel()
    model.release.clear()  # the model hangs until released: the queue fills up
    scheduler = BatchScheduler(model, options())
    pool = ThreadPoolExecutor(4)
    try:
        running = pool.submit(scheduler.submit, {"x": np.ones((16, 1))})
        assert model.called.wait(5), "the batch thread never took the first batch"
        queued = [pool.submit(scheduler.submit, {"x": np.ones((16, 1))}) for _ in range(2)]
        wait_until(lambda: scheduler._queued_rows == 32, 5, "two full batches queued behind the running one",
                   poll_seconds=0.001)
        started = time.monotonic()
        with pytest.raises(ServingError) as error:
            scheduler.submit({"x": np.ones((1, 1))})
        assert error.value.grpc_code == grpc.StatusCode.UNAVAILABLE and "full" in error.value.message
        assert time.monotonic() - started < 0.5  # refused at once, not after the hung model
        with pytest.raises(ServingError) as error:
            scheduler.submit({"x": np.ones((17, 1))})
        assert error.value.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        model.release.set()  # never leave pool threads blocked, even when an assertion failed
        pool.shutdown()
    assert all(f.result(5)["y"].shape == (16, 1) for f in [running, *queued])
    scheduler.close()


class ConcurrencyModel:
    """Records the threads it runs on and the most batches it ever ran at once."""

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()

    def __call__(self, inputs):
        with self._lock:
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
            self.threads.add(threading.current_thread().name)
        time.sleep(0.002)
        with self._lock:
            self._at_once -= 1
        return {"y": inputs["x"] * 2}


def test_a_lone_request_runs_on_the_callers_thread_only_without_a_batch_timeout():
    for timeout_micros, on_caller in ((0, True), (1_000, False)):
        model = ConcurrencyModel()
        scheduler = BatchScheduler(model, options(batch_timeout_micros=timeout_micros))
        scheduler.submit({"x": np.ones((1, 1))})
        assert (model.threads == {threading.current_thread().name}) is on_caller, (timeout_micros, model.threads)
        scheduler.close()


def test_inline_runs_and_batch_threads_together_never_exceed_the_batch_threads():
    model = ConcurrencyModel()
    scheduler = BatchScheduler(model, options(num_batch_threads=2))
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: scheduler.submit({"x": np.full((1, 1), i)}), range(400)))
    assert [int(r["y"][0, 0]) for r in results] == [2 * i for i in range(400)]
    assert model.most_at_once <= 2
    assert any(name.startswith("batch-") for name in model.threads)  # under load, batch threads took queued work
    scheduler.close()


def test_close_waits_for_a_batch_running_on_its_callers_thread():
    model = RecordingModel(seconds=0)
    model.release.clear()  # the inline run hangs until released
    scheduler = BatchScheduler(model, options())
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(scheduler.submit, {"x": np.ones((1, 1))})
        assert model.called.wait(5), "the lone request never reached the model"
        closing = pool.submit(scheduler.close)
        with pytest.raises(TimeoutError):
            closing.result(timeout=0.2)  # still running inline: close() must not return yet
        model.release.set()
        closing.result(timeout=5)
        assert running.result(timeout=5)["y"].shape == (1, 1)


def test_an_error_of_an_inline_run_reaches_its_caller_and_frees_the_slot():
    calls = []

    def failing_once(inputs):
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise RuntimeError("the model failed")
        return {"y": inputs["x"] * 2}

    scheduler = BatchScheduler(failing_once, options())
    with pytest.raises(RuntimeError, match="the model failed"):
        scheduler.submit({"x": np.ones((1, 1))})
    assert scheduler.submit({"x": np.ones((1, 1))})["y"][0, 0] == 2
    assert calls == [threading.current_thread().name] * 2  # both inline: the failed run gave its slot back
    scheduler.close()
