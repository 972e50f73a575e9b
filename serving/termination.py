"""Waiting for SIGTERM / SIGINT in a process that runs native threads (gRPC, TensorFlow)."""

from __future__ import annotations

import signal
import threading


class TerminationSignal:
    """Set by SIGTERM or SIGINT; ``wait()`` returns once either has arrived."""

    def __init__(self) -> None:
        self._received = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._received.set())

    @property
    def event(self) -> threading.Event:
        return self._received

    def wait(self, poll_seconds: float = 0.2) -> None:
        # The kernel may deliver the signal to any thread; CPython then runs the handler
        # only when the main thread next executes bytecode, so an untimed wait can sleep
        # through it (python/cpython#85300). Waking up regularly bounds that delay.
        while not self._received.wait(poll_seconds):
            pass
