"""Hostile HTTP clients for the edge's attack tier (tests/attacks/test_edge_attacks.py):
key spraying, connection floods, stalled bodies.

Each attack runs in a process of its own (``attacker``), so that its CPU time and
Python's GIL are not the bystander's, which runs in the test process. Every attack is
bounded in count and time, and talks to loopback only; it comes from a loopback address
of its own (127.0.0.0/8 is all loopback on Linux), so that the edge's per-address limits
tell it apart from the bystander on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import secrets
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REVIEW = json.dumps({"text": "A wonderful, moving film."}).encode()
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.1  # nginx's memory and open files, while bodies are held


@contextmanager
def attacker() -> Iterator[ProcessPoolExecutor]:
    """A started process to ``submit`` attacks to (started before, so its start-up is not in the attack).
    It runs at the lowest CPU priority: it stands for a client on another machine, and its own
    sending is no cost of the service's."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os.nice,
                             initargs=(19,)) as pool:
        pool.submit(os.getpid).result(60)
        yield pool


def well_formed_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)  # serving.gateway.access.api_keys.new_key()'s shape


def malformed_key(index: int) -> str:
    return ("sk_" + secrets.token_urlsafe(8), secrets.token_hex(24), "sk_" + secrets.token_urlsafe(32) + "!",
            " " + secrets.token_urlsafe(40))[index % 4]


def answer_code(status: int, body: bytes) -> str:
    """``"<status> <error code>"``, or the status alone for an answer that is not an error."""
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(status)


@dataclass
class Answers:
    counts: Counter[str]  # "<status> <error code>" -> requests
    seconds: float  # from the first request sent to the last answer
    messages: dict[str, str] = field(default_factory=dict)  # one error message per code

    def count(self, prefix: str) -> int:
        return sum(number for code, number in self.counts.items() if code.startswith(prefix))


def spray_keys(port: int, source: str, count: int, seconds: float, concurrency: int,
               bearer: str | None = None) -> Answers:
    """``count`` predictions spread evenly over ``seconds``, ``concurrency`` at a time over keep-alive
    connections, each with a new X-API-Key (well-formed and malformed by turns) and, with ``bearer``,
    that Bearer key too."""
    counts: Counter[str] = Counter()
    messages: dict[str, str] = {}
    lock = threading.Lock()
    indexes = iter(range(count))

    def next_index() -> int | None:
        with lock:
            return next(indexes, None)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        while (index := next_index()) is not None:
            pause = started + index * seconds / count - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing
            headers = {"Content-Type": "application/json",
                       "X-API-Key": well_formed_key() if index % 2 else malformed_key(index // 2)}
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            try:
                connection.request("POST", "/v1/sentiment", REVIEW, headers)
                response = connection.getresponse()
                body = response.read()
            except (ConnectionError, http.client.HTTPException) as error:
                connection.close()  # the next request opens a new connection
                code = type(error).__name__
            else:
                code = answer_code(response.status, body)
                if " " in code and code not in messages:  # an error in the JSON shape
                    messages[code] = json.loads(body)["error"]["message"]
                if response.will_close:
                    connection.close()
            with lock:
                counts[code] += 1
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return Answers(counts, time.monotonic() - started, messages)


def request_head(content_length: int, key: str | None = None) -> bytes:
    head = (f"POST /v1/sentiment HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\n")
    return (head + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n").encode()


@dataclass
class Held:
    """Connections held open against the edge: what each got, and when the edge closed it."""

    answers: Counter[str] = field(default_factory=Counter)  # "<status> <code>", or "closed" without one
    closed_after: list[float] = field(default_factory=list)  # seconds from the connection's last byte sent
    still_open: int = 0


def _watch(sockets: dict[socket.socket, float], held: Held, timeout: float) -> None:
    """Until each socket is answered (then closed here, as a client would) or closed by the server."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    received: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
    deadline = time.monotonic() + timeout
    while sockets and time.monotonic() < deadline:
        for key, _ in selector.select(POLL_SECONDS):
            sock = key.fileobj
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            received[sock] += chunk
            head, separator, body = received[sock].partition(b"\r\n\r\n")
            lengths = [line.split(b":")[1] for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")]
            answered = separator and len(body) >= int(lengths[0] if lengths else 0)
            if chunk and not answered:
                continue
            held.answers[answer_code(int(head.split()[1]), body) if answered else "closed"] += 1
            held.closed_after.append(time.monotonic() - sockets.pop(sock))
            selector.unregister(sock)
            sock.close()
    held.still_open = len(sockets)
    for sock in sockets:
        sock.close()
    selector.close()


def connection_flood(port: int, source: str, idle: int, waiting: int,
                     timeout: float = 15) -> tuple[Held, Held]:
    """``idle`` connections that send nothing, then ``waiting`` that send a request's headers (each with
    a new well-formed key) and never its body; what became of each kind."""
    sockets: dict[socket.socket, float] = {}
    for _ in range(idle):
        sockets[socket.create_connection(("127.0.0.1", port), 5, (source, 0))] = time.monotonic()
    idle_sockets = dict(sockets)
    waiting_sockets: dict[socket.socket, float] = {}
    for _ in range(waiting):
        sock = socket.create_connection(("127.0.0.1", port), 5, (source, 0))
        sock.sendall(request_head(100, well_formed_key()))
        waiting_sockets[sock] = time.monotonic()
    idle_held, waiting_held = Held(), Held()
    watchers = [threading.Thread(target=_watch, args=(idle_sockets, idle_held, timeout)),
                threading.Thread(target=_watch, args=(waiting_sockets, waiting_held, timeout))]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join(timeout + 10)
    return idle_held, waiting_held


@dataclass
class Stalled:
    held: Held
    rss_before_kb: int  # the nginx processes' VmRSS, summed
    rss_peak_kb: int  # the largest sum sampled while the bodies were held
    rss_after_kb: int
    temp_files_peak: int  # request bodies in temporary files at once (nginx unlinks them at once: open ones)
    temp_bytes_peak: int


def nginx_rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def body_files(pids: list[int]) -> list[int]:
    """The sizes of the request-body temporary files the processes hold open."""
    sizes = []
    for pid in pids:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                if "client-body-temp" in os.readlink(fd.path):
                    sizes.append(os.stat(fd.path).st_size)
            except FileNotFoundError:
                continue  # closed meanwhile
    return sizes


def stalled_bodies(port: int, sources: list[str], per_source: int, body_bytes: int, seconds: float,
                   nginx_pids: list[int], timeout: float = 20) -> Stalled:
    """From each source, ``per_source`` connections that announce ``body_bytes``, send all of it
    but the last byte, and stall, spread evenly over ``seconds``; nginx's memory and temporary
    files sampled meanwhile."""
    rss_before = nginx_rss_kb(nginx_pids)
    peak = {"rss": rss_before, "files": 0, "bytes": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            peak["rss"] = max(peak["rss"], nginx_rss_kb(nginx_pids))
            sizes = body_files(nginx_pids)
            peak["files"], peak["bytes"] = max(peak["files"], len(sizes)), max(peak["bytes"], sum(sizes))

    sampler = threading.Thread(target=sample)
    sampler.start()
    body = b"x" * (body_bytes - 1)
    sockets: dict[socket.socket, float] = {}
    count, started = len(sources) * per_source, time.monotonic()
    try:
        for index in range(count):
            pause = started + index * seconds / count - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing
            sock = socket.create_connection(("127.0.0.1", port), 5, (sources[index % len(sources)], 0))
            sock.sendall(request_head(body_bytes) + body)
            sockets[sock] = time.monotonic()
        held = Held()
        _watch(sockets, held, timeout)
    finally:
        done.set()
        sampler.join()
    return Stalled(held, rss_before, peak["rss"], nginx_rss_kb(nginx_pids), peak["files"], peak["bytes"])
