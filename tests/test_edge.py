"""Slow clients against `make run`'s stack (deploy/local/run.sh, the real script): the
nginx edge keeps the HTTP API available. (What the gateway's HTTP server does without
the edge is measured by `python -m benchmarks.edge`.)"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests

from harness.processes import ROOT, wait_until
from harness.slow_clients import HTTP2_HEAD, NormalClient, SlowClients
from serving.client import SentimentClient

SLOW_CONNECTIONS = 300
TRICKLE_SECONDS = 3  # one body byte per interval: longer than the edge's body timeout
EDGE_BODY_TIMEOUT_SECONDS = int(re.search(r"client_body_timeout (\d+)s;",
                                          (ROOT / "deploy" / "edge" / "nginx.conf").read_text())[1])


def test_metrics_stay_internal_and_request_ids_cross_the_edge(local_stack):
    hidden = requests.get(f"{local_stack.edge}/metrics", timeout=10)
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    assert "sentiment_requests_total" in requests.get(f"{local_stack.gateway}/metrics", timeout=10).text
    body = {"text": "A wonderful film."}
    given = requests.post(f"{local_stack.edge}/v1/sentiment", json=body, headers={"X-Request-ID": "client-7"},
                          timeout=10)
    assert given.headers["X-Request-ID"] == "client-7"
    made = requests.post(f"{local_stack.edge}/v1/sentiment", json=body, timeout=10).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)  # the edge's own id, which the gateway kept
    edge_log = local_stack.run_dir / "edge.log"
    wait_until(lambda: f'"request_id": "{made}"' in edge_log.read_text(), 5, "the edge's access log line")
    # Only this request's line: others may be half written while the file is read.
    (line,) = [json.loads(text) for text in edge_log.read_text().splitlines() if f'"request_id": "{made}"' in text]
    assert (line["route"], line["status"], line["transport"]) == ("/v1/sentiment", "200", "http")
    assert line["duration_s"] >= 0 and line["bytes"] > 0 and line["key_id"] is None


def test_the_edge_serves_the_api_and_answers_its_own_errors_in_the_gateway_shape(local_stack):
    response = requests.post(f"{local_stack.edge}/v1/sentiment", json={"text": "A wonderful film."}, timeout=10)
    assert response.status_code == 200 and response.json()["predictions"][0]["label"] in ("positive", "negative")
    too_large = requests.post(f"{local_stack.edge}/v1/sentiment", data=b"x" * (1_048_576 + 1),
                              headers={"Content-Type": "application/json"}, timeout=10)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"


def test_slow_bodies_leave_the_http_api_available_through_the_edge(local_stack):
    # The level to come back to is that of a service that has served: the workers'
    # first requests open connections and fill caches, which is not a leak.
    NormalClient(f"{local_stack.edge}/v1/sentiment", duration=3).run()
    fds_before, rss_before = local_stack.http_server_footprint()
    with SlowClients("127.0.0.1", local_stack.edge_port, SLOW_CONNECTIONS, TRICKLE_SECONDS) as slow:
        wait_until(lambda: len(slow.sockets) == SLOW_CONNECTIONS, 10, "the slow connections")
        normal = NormalClient(f"{local_stack.edge}/v1/sentiment", duration=8).run()
        wait_until(lambda: slow.still_open == 0, 15, "the edge closing every trickling connection")
    print(f"\nedge, {SLOW_CONNECTIONS} slow connections: {normal.success_rate:.0%} of {len(normal.statuses)} "
          f"normal requests succeeded, p99 {normal.p99 * 1000:.0f} ms; slow ones closed after "
          f"{max(slow.closed_after, default=0):.1f} s at most")
    assert normal.success_rate == 1.0, sorted(set(normal.statuses))
    assert normal.p99 < 1.0
    # The edge closed every trickling connection, each after its body timeout: not refused, not cut early.
    assert EDGE_BODY_TIMEOUT_SECONDS - 0.5 <= min(slow.closed_after), sorted(slow.closed_after)[:5]
    assert max(slow.closed_after) <= EDGE_BODY_TIMEOUT_SECONDS + 2, sorted(slow.closed_after)[-5:]
    fds_after, rss_after = local_stack.http_server_footprint()
    assert fds_after <= fds_before + 4 and rss_after <= rss_before + 16 * 1024, (
        f"fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} kB")


def test_slow_http2_clients_leave_the_grpc_api_available(local_stack):
    """The gRPC port has no edge: gRPC core reads frames asynchronously, so clients that
    stall inside a frame hold no handler thread."""
    latencies = []
    with SlowClients("127.0.0.1", local_stack.grpc_port, SLOW_CONNECTIONS, TRICKLE_SECONDS,
                     head=HTTP2_HEAD, response_ends_it=False) as slow:
        wait_until(lambda: len(slow.sockets) == SLOW_CONNECTIONS, 10, "the slow connections")
        with SentimentClient(f"127.0.0.1:{local_stack.grpc_port}") as client:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                started = time.perf_counter()
                (prediction,) = client.predict(["A wonderful film."], timeout=5)
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)
        assert slow.still_open > SLOW_CONNECTIONS // 2, "the slow connections were really held open meanwhile"
    print(f"\ngRPC, {SLOW_CONNECTIONS} stalled HTTP/2 connections: {len(latencies)} calls, all OK, "
          f"p99 {sorted(latencies)[int(len(latencies) * 0.99)] * 1000:.0f} ms")
    assert sorted(latencies)[int(len(latencies) * 0.99)] < 1.0


def open_and_send(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(payload)
    return sock


def seconds_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    started = time.monotonic()
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return time.monotonic() - started, received


@pytest.mark.parametrize("payload, limit", [
    (b"", 5 + 2),  # connects and sends nothing: client_header_timeout
    (b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\n", 5 + 2),  # headers never finish
    (b"POST /v1/sentiment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Content-Length: 100\r\n\r\n{\"text\":", 2 + 2),  # body shorter than its Content-Length
])
def test_the_edge_closes_idle_slow_and_short_requests(local_stack, payload, limit):
    seconds, _ = seconds_until_closed(open_and_send(local_stack.edge_port, payload))
    assert seconds < limit
