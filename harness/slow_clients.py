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

POLL_SECONDS = 0.1  # how often the slow connections are checked for an answer or a close

HTTP_HEAD = (
    b"POST /v1/sentiment HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
    b"Content-Length: 4000\r\n\r\n"
)
# HTTP/2 (gRPC): the connection preface, then a SETTINGS frame announcing 600 bytes
# of payload, which the trickled bytes then fill (unknown setting ids are ignored).
HTTP2_HEAD = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + (600).to_bytes(3, "big") + b"\x04\x00" + bytes(4)


@dataclass
class SlowClients:
    """``count`` connections that send ``head`` (an HTTP request's headers by default),
    then one byte every ``interval`` seconds; records how long after its connect the
    server closed (or answered) each, to within ``POLL_SECONDS``. The connections come
    from ``sources`` (local addresses) by turns, when given."""

    host: str
    port: int
    count: int
    interval: float
    head: bytes = HTTP_HEAD
    # HTTP/1.1: any response ends the request (e.g. 408). HTTP/2: the server speaks
    # first (its SETTINGS), so only a closed connection counts.
    response_ends_it: bool = True
    sources: tuple[str, ...] = ()
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
        connected: dict[socket.socket, float] = {}
        for index in range(self.count):
            source = (self.sources[index % len(self.sources)], 0) if self.sources else None
            sock = socket.create_connection((self.host, self.port), timeout=5, source_address=source)
            sock.sendall(self.head)
            sock.setblocking(False)
            self.sockets.append(sock)
            connected[sock] = time.monotonic()
        next_byte = time.monotonic() + self.interval
        while connected and not self._stop.wait(POLL_SECONDS):
            trickle = time.monotonic() >= next_byte
            if trickle:
                next_byte += self.interval
            for sock in list(connected):
                if self._answered_or_closed(sock, trickle):
                    self.closed_after.append(time.monotonic() - connected.pop(sock))

    def _answered_or_closed(self, sock: socket.socket, trickle: bool) -> bool:
        """True once the server has answered (e.g. 408) or closed; else maybe send the next byte."""
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            data = None  # nothing yet: the server is still waiting for the rest
        except OSError:
            return True
        if data == b"" or (data and self.response_ends_it):
            return True  # closed, or answered
        if not trickle:
            return False
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
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an API key
    statuses: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def run(self) -> NormalClient:
        deadline = time.monotonic() + self.duration
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = requests.post(self.url, json={"text": "A wonderful, moving film."}, headers=self.headers,
                                         timeout=self.timeout)
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
