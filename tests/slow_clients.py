"""Slow HTTP clients (slowloris-style) and a normal client measured beside them.

Every loop here is bounded in count and time and talks to loopback only.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import requests

REQUEST_HEAD = (
    "POST /v1/sentiment HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    "Content-Length: 4000\r\n\r\n"
)


@dataclass
class SlowClients:
    """``count`` connections that send a request's headers, then one body byte every
    ``interval`` seconds; records when the server closed each of them."""

    host: str
    port: int
    count: int
    interval: float
    sockets: list[socket.socket] = field(default_factory=list)
    closed_after: list[float] = field(default_factory=list)

    def __enter__(self) -> SlowClients:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in self.sockets:
            sock.close()

    def _run(self) -> None:
        started = time.monotonic()
        open_sockets = []
        for _ in range(self.count):
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(REQUEST_HEAD.format(host=self.host).encode())
            sock.setblocking(False)
            self.sockets.append(sock)
            open_sockets.append(sock)
        while open_sockets and not self._stop.wait(self.interval):
            for sock in list(open_sockets):
                if self._answered_or_closed(sock):
                    open_sockets.remove(sock)
                    self.closed_after.append(time.monotonic() - started)

    @staticmethod
    def _answered_or_closed(sock: socket.socket) -> bool:
        """True once the server has answered (e.g. 408) or closed; else send the next byte."""
        try:
            sock.recv(65536)
            return True  # a response, or b"" for a closed connection
        except BlockingIOError:
            pass  # nothing yet: the server is still waiting for the body
        except OSError:
            return True
        try:
            sock.send(b" ")
        except BlockingIOError:
            pass
        except OSError:
            return True
        return False

    @property
    def still_open(self) -> int:
        return self.count - len(self.closed_after)


@dataclass
class NormalClient:
    """One request every ``pause`` seconds for ``duration`` seconds; status and latency of each."""

    url: str
    duration: float
    pause: float = 0.05
    timeout: float = 5.0
    statuses: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def run(self) -> NormalClient:
        deadline = time.monotonic() + self.duration
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = requests.post(self.url, json={"text": "A wonderful, moving film."}, timeout=self.timeout)
                self.statuses.append(str(response.status_code))
            except requests.RequestException as error:
                self.statuses.append(type(error).__name__)
            self.latencies.append(time.perf_counter() - started)
            time.sleep(self.pause)
        return self

    @property
    def success_rate(self) -> float:
        return self.statuses.count("200") / len(self.statuses)

    @property
    def p99(self) -> float:
        return float(np.percentile(self.latencies, 99))
