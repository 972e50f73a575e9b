"""Steady closed-loop traffic for fault tests: worker threads send requests back to back
and record every outcome, so that a test can check that no request went unanswered."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import requests

from harness.processes import wait_until
from serving.client import SentimentClient

# A sender performs one request and returns (status, detail): the HTTP status code as a
# string or the gRPC status name, and e.g. the model version that answered.
Sender = Callable[[], tuple[str, object]]


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic() when the request was sent
    seconds: float
    status: str  # "200", "503", "OK", "UNAVAILABLE", ... or "exception: <type>"
    detail: object = None


class Traffic:
    """``with Traffic(make_sender, workers=4) as traffic: ...`` runs ``workers`` threads,
    each with its own sender from ``make_sender()``, until the block ends."""

    def __init__(self, make_sender: Callable[[], Sender], workers: int) -> None:
        self._make_sender = make_sender
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]
        self.outcomes: list[Outcome] = []

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a request never returned"

    def _run(self) -> None:
        send = self._make_sender()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, detail = send()
            except Exception as error:  # recorded and asserted on by the test
                status, detail = f"exception: {type(error).__name__}", str(error)
            outcome = Outcome(started, time.monotonic() - started, status, detail)
            with self._lock:
                self.outcomes.append(outcome)

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter:
        with self._lock:
            return Counter(o.status for o in self.outcomes if since <= o.started < until)

    def wait_for(self, count: int, since: float = 0.0, statuses: set[str] | None = None,
                 older_than: float = 0.0, seconds: float = 60) -> None:
        """Until ``count`` requests sent since ``since``, and at least ``older_than`` seconds
        ago, were answered (with one of ``statuses``)."""
        def answered() -> bool:
            found = self.statuses(since=since, until=time.monotonic() - older_than)
            return sum(n for status, n in found.items() if statuses is None or status in statuses) >= count

        wait_until(answered, seconds, f"{count} answers{f' in {sorted(statuses)}' if statuses else ''}")

    def latest(self) -> Outcome | None:
        with self._lock:
            return self.outcomes[-1] if self.outcomes else None


def http_sender(base_url: str, body: dict, timeout: float = 15, headers: dict[str, str] | None = None
                ) -> Callable[[], Sender]:
    def make() -> Sender:
        session = requests.Session()
        session.headers.update(headers or {})

        def send() -> tuple[str, object]:
            response = session.post(f"{base_url}/v1/sentiment", json=body, timeout=timeout)
            detail = response.json()["predictions"][0]["model_version"] if response.ok else response.json()
            return str(response.status_code), detail

        return send

    return make


def grpc_sender(target: str, texts: list[str], timeout: float = 15, **kwargs) -> Callable[[], Sender]:
    def make() -> Sender:
        client = SentimentClient(target)

        def send() -> tuple[str, object]:
            try:
                predictions = client.predict(texts, timeout=timeout, **kwargs)
            except grpc.RpcError as error:
                return error.code().name, error.details()
            return "OK", predictions[0].model_version

        return send

    return make
