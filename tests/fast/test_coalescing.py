"""The gateway's call sharing in-process, with a model-server call that records its batches."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from harness.processes import wait_until
from serving.gateway.errors import ModelServerTimeout, ModelServerUnavailable
from serving.gateway.routing.coalescing import Coalescer


class RecordingCall:
    """Answers each row with its first id / 100 after ``seconds``; records the rows of each call."""

    def __init__(self, seconds: float = 0.05, error: Exception | None = None) -> None:
        self.rows: list[int] = []
        self.request_ids: list[list[str]] = []
        self.seconds = seconds
        self.error = error
        self.entered = threading.Event()  # set once a call has started
        self.release = threading.Event()
        self.release.set()

    def __call__(self, model_name, version, ids, timeout, request_ids):
        self.entered.set()
        self.release.wait(timeout)
        self.rows.append(ids.shape[0])
        self.request_ids.append(list(request_ids))
        time.sleep(self.seconds)
        if self.error:
            raise self.error
        return ids[:, 0].astype(np.float32) / 100, version


def queued(coalescer: Coalescer, model_name: str, version: int) -> int:
    """Requests waiting for a free call."""
    return len(coalescer._queued.get((model_name, version), ()))


def ids(value: int, rows: int = 1) -> np.ndarray:
    return np.full((rows, 500), value, dtype=np.int32)


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    call = RecordingCall()
    coalescer = Coalescer(call, max_calls=1, max_rows=128)
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda i: coalescer.predict("m", 3, ids(i, 2), 5), range(24)))
    for i, (probabilities, version) in enumerate(results):
        np.testing.assert_allclose(probabilities, [i / 100, i / 100])
        assert version == 3
    assert sum(call.rows) == 48 and len(call.rows) < 24


def test_a_shared_call_carries_the_request_id_of_every_request_in_it():
    call = RecordingCall()
    coalescer = Coalescer(call, max_calls=1, max_rows=128)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: coalescer.predict("m", 1, ids(i), 5, (f"request-{i}",)), range(16)))
    assert sorted(given for carried in call.request_ids for given in carried) == sorted(
        f"request-{i}" for i in range(16))
    assert any(len(carried) > 1 for carried in call.request_ids)  # some calls were shared


def test_a_lone_request_is_sent_at_once_and_rows_per_call_are_bounded():
    call = RecordingCall(seconds=0)
    coalescer = Coalescer(call, max_calls=1, max_rows=4)
    started = time.monotonic()
    coalescer.predict("m", 1, ids(1), 5)
    assert time.monotonic() - started < 0.05 and call.rows == [1]

    call.release.clear()
    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(coalescer.predict, "m", 1, ids(i, 3), 5) for i in range(10)]
        wait_until(lambda: queued(coalescer, "m", 1) == 9, 5, "nine requests queued behind the call in flight",
                   poll_seconds=0.001)
        call.release.set()
        assert all(f.result(5)[0].shape == (3,) for f in futures)
    assert call.rows[1:] == [3] * 10  # two 3-row requests never share a call of at most 4 rows


def test_an_error_reaches_every_request_of_the_shared_call():
    call = RecordingCall(error=ModelServerUnavailable("down", retry_after=1))
    coalescer = Coalescer(call, max_calls=1, max_rows=128)

    def attempt(i):
        with pytest.raises(ModelServerUnavailable):
            coalescer.predict("m", 1, ids(i), 5)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(attempt, range(8)))
    assert len(call.rows) < 8


def test_a_queued_request_times_out_when_no_call_frees_up():
    call = RecordingCall()
    call.release.clear()  # the call in flight hangs
    coalescer = Coalescer(call, max_calls=1, max_rows=128)
    threading.Thread(target=lambda: coalescer.predict("m", 1, ids(0), 3), daemon=True).start()
    assert call.entered.wait(5)
    started = time.monotonic()
    with pytest.raises(ModelServerTimeout):
        coalescer.predict("m", 1, ids(1), 0.1)
    assert 0.1 <= time.monotonic() - started < 0.4
    call.release.set()
