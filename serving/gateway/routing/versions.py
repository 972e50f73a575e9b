"""The versions the model server serves, cached so that the request path makes one status
call per model per ``ttl`` rather than one per request.

A version the cache does not show as AVAILABLE is looked up again before the gateway
answers: a version that loaded a moment ago serves at once, one still loading answers
``ModelLoading`` (503, retry), and only a version the model server does not have is
``ModelNotFound``. Those look-ups are shared: threads that miss together wait for one
status call, and a model is looked up at most once per ``MISS_LOOKUP_SECONDS``, so a
flood of requests for a version that does not exist costs the model server nothing.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from serving.gateway.errors import GatewayError, ModelLoading, ModelNotFound, VersionNotPublished
from serving.gateway.routing.model_client import ModelServerClient
from serving.gateway.routing.rollouts import VersionRef

AVAILABLE = "AVAILABLE"
LOADING_STATES = frozenset({"START", "LOADING"})  # TF Serving's states of a version still to serve
MISS_LOOKUP_SECONDS = 0.05


@dataclass(frozen=True)
class _Looked:
    at: float
    states: Mapping[int, str]


class VersionCache:
    def __init__(self, client: ModelServerClient, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._states: dict[str, _Looked] = {}
        self._labels: dict[tuple[str, str], tuple[float, int]] = {}
        self._lookups: dict[str, threading.Lock] = {}
        self._generations: dict[str, int] = {}  # status calls ended, per model
        self._failures: dict[str, GatewayError] = {}  # the last call's error, while it is the last
        self._lock = threading.Lock()

    def states(self, model_name: str, max_age: float | None = None, timeout: float | None = None) -> Mapping[int, str]:
        """Every version the model server reports for ``model_name``, with its state name, at
        most ``max_age`` seconds old (the cache's ttl when None; 0, for a miss, means at most
        ``MISS_LOOKUP_SECONDS``); a status call, when one is needed, waits at most ``timeout``
        seconds (the model-server client's own deadline when None)."""
        max_age = self._ttl if max_age is None else max_age or MISS_LOOKUP_SECONDS
        looked = self._states.get(model_name)
        if looked is not None and self._clock() - looked.at < max_age:
            return looked.states
        with self._lock:
            lookup = self._lookups.setdefault(model_name, threading.Lock())
            seen = self._generations.get(model_name, 0)
        with lookup:  # one status call at a time per model
            # A call that ended while this thread waited answers for it too, failed or not:
            # waiters never queue up for calls of their own behind a slow model server.
            if self._generations.get(model_name, 0) != seen:
                if (failure := self._failures.get(model_name)) is not None:
                    raise copy.copy(failure)  # each thread raises its own instance
                return self._states[model_name].states
            looked = self._states.get(model_name)
            if looked is not None and self._clock() - looked.at < max_age:
                return looked.states
            started = self._clock()
            try:
                states = self._client.version_states(model_name, timeout)
            except GatewayError as error:
                self._failures[model_name] = error
                raise
            finally:
                self._generations[model_name] = self._generations.get(model_name, 0) + 1
            self._failures.pop(model_name, None)
            self._states[model_name] = _Looked(started, states)
            return states

    def _labelled(self, model_name: str, label: str) -> int:
        key = (model_name, label)
        cached = self._labels.get(key)
        if cached and self._clock() - cached[0] < self._ttl:
            return cached[1]
        version = self._client.resolve_label(model_name, label)
        self._labels[key] = (self._clock(), version)
        return version

    def pick(self, model_name: str, version: VersionRef | None) -> int:
        """``version`` (a number or a label) if it is available, else the newest available one when None."""
        if isinstance(version, str):
            version = self._labelled(model_name, version)
        states = self.states(model_name)
        if version is None:
            available = [v for v, state in states.items() if state == AVAILABLE]
            if not available:
                states = self.states(model_name, max_age=0)
                available = [v for v, state in states.items() if state == AVAILABLE]
            if available:
                return max(available)
            if LOADING_STATES & set(states.values()):
                raise ModelLoading(f"{model_name} has no available version yet: loading {_loading(states)}")
            raise ModelNotFound(f"{model_name} has no available version")
        if states.get(version) != AVAILABLE:
            states = self.states(model_name, max_age=0)
        state = states.get(version)
        if state == AVAILABLE:
            return version
        available = sorted(v for v, s in states.items() if s == AVAILABLE)
        if state in LOADING_STATES:
            raise ModelLoading(f"{model_name} version {version} is loading (available: {available})")
        if state is None:
            raise VersionNotPublished(f"{model_name} version {version} is not available (available: {available})")
        raise ModelNotFound(f"{model_name} version {version} is not available: {state.lower()} "
                            f"(available: {available})")

    def forget(self, model_name: str) -> None:
        """Drop what is known of ``model_name``: the next request looks it up again."""
        self._states.pop(model_name, None)
        for key in [key for key in self._labels if key[0] == model_name]:
            self._labels.pop(key, None)


def _loading(states: Mapping[int, str]) -> str:
    return ", ".join(str(v) for v, state in sorted(states.items()) if state in LOADING_STATES)
