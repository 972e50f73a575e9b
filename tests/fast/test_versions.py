"""The gateway's cache of served versions: a miss is looked up again before answering, and
look-ups are shared, with a clock the test moves."""

from __future__ import annotations

import inspect
import sys
import threading

import pytest

from harness.processes import wait_until
from serving.gateway.data_plane import AVAILABLE
from serving.gateway.errors import ModelLoading, ModelNotFound, VersionNotPublished
from serving.gateway.routing.versions import MISS_LOOKUP_SECONDS, VersionCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(model_client, clock) -> VersionCache:
    model_client.versions["imdb_lstm"] = {1: AVAILABLE}
    return VersionCache(model_client, ttl=1.0, clock=clock)


def test_a_version_published_after_the_last_status_call_answers_before_the_ttl(cache, model_client, clock):
    assert cache.pick("imdb_lstm", None) == 1
    model_client.versions["imdb_lstm"][2] = AVAILABLE
    clock.now += 2 * MISS_LOOKUP_SECONDS
    assert cache.pick("imdb_lstm", 2) == 2
    assert cache.pick("imdb_lstm", None) == 2  # the newest, from the same look-up


def test_loading_is_not_missing(cache, model_client, clock):
    model_client.versions["imdb_lstm"] = {1: "END", 2: "START", 3: "LOADING"}
    for version in (2, 3):
        with pytest.raises(ModelLoading, match=f"version {version} is loading"):
            cache.pick("imdb_lstm", version)
    with pytest.raises(ModelLoading, match="no available version yet: loading 2, 3"):
        cache.pick("imdb_lstm", None)
    with pytest.raises(ModelNotFound, match="version 1 is not available: end") as gone:
        cache.pick("imdb_lstm", 1)
    assert not isinstance(gone.value, VersionNotPublished)
    with pytest.raises(VersionNotPublished, match="version 4 is not available"):
        cache.pick("imdb_lstm", 4)
    model_client.versions["imdb_lstm"] = {1: "END"}
    clock.now += 2 * MISS_LOOKUP_SECONDS
    with pytest.raises(ModelNotFound, match="has no available version$"):
        cache.pick("imdb_lstm", None)


def test_a_flood_for_a_missing_version_makes_one_look_up_per_interval(cache, model_client, clock):
    cache.pick("imdb_lstm", 1)
    clock.now += 2 * MISS_LOOKUP_SECONDS
    before = model_client.status_calls
    for _ in range(100):
        with pytest.raises(VersionNotPublished):
            cache.pick("imdb_lstm", 9)
    assert model_client.status_calls - before == 1
    clock.now += 2 * MISS_LOOKUP_SECONDS
    with pytest.raises(VersionNotPublished):
        cache.pick("imdb_lstm", 9)
    assert model_client.status_calls - before == 2


def waiting_for_the_lookup(thread: threading.Thread) -> bool:
    """``thread`` is blocked on the cache's per-model status call, waiting for its answer."""
    frame = sys._current_frames().get(thread.ident)
    waits_at = next(number for number, line in enumerate(inspect.getsourcelines(VersionCache.states)[0],
                                                         VersionCache.states.__code__.co_firstlineno)
                    if "with lookup:" in line)
    return frame is not None and frame.f_code is VersionCache.states.__code__ and frame.f_lineno == waits_at


def test_threads_that_miss_together_share_one_status_call(model_client, clock):
    """The first thread's status call is held open while 7 others wait for it; by its answer
    the clock is past the cache's ttl, so a waiter that did not take that answer would make a
    status call of its own."""
    model_client.versions["imdb_lstm"] = {1: AVAILABLE, 2: AVAILABLE}
    answered, release = threading.Event(), threading.Event()
    states = model_client.version_states

    def slow_states(model_name: str, timeout: float | None = None) -> dict[int, str]:
        answered.set()
        release.wait(10)
        return states(model_name, timeout)

    model_client.version_states = slow_states
    cache = VersionCache(model_client, ttl=1.0, clock=clock)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.pick("imdb_lstm", 2))) for _ in range(8)]
    threads[0].start()
    assert answered.wait(10)
    clock.now += 5
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: all(waiting_for_the_lookup(thread) for thread in threads[1:]), 10,
               "the other threads waiting for the status call", poll_seconds=0.001)
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == [2] * 8 and model_client.status_calls == 1
