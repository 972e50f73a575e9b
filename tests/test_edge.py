"""The nginx edge against `make run`'s stack (deploy/local/run.sh, the real script): slow
clients leave the HTTP API available, and a second edge started by the same
deploy/edge/start.sh in front of that stack's gateway serves HTTPS and limits each client.
(What the gateway's HTTP server does without the edge is measured by `python -m benchmarks.edge`.)"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.certificates import make_certificates
from harness.edge import EdgeRefusedToStart, start_edge
from harness.processes import ROOT, free_port, wait_until
from harness.slow_clients import HTTP2_HEAD, NormalClient, SlowClients
from serving.client import SentimentClient
from serving.gateway.access.api_keys import new_key

SLOW_CONNECTIONS = 300
TRICKLE_SECONDS = 3  # one body byte per interval: longer than the edge's body timeout
EDGE_CONF = (ROOT / "deploy" / "edge" / "nginx.conf").read_text()
EDGE_BODY_TIMEOUT_SECONDS = int(re.search(r"client_body_timeout (\d+)s;", EDGE_CONF)[1])
# Slow clients on many addresses (a botnet): from one, all but the edge's per-address share
# of requests in progress would be refused at once (tests/attacks/test_edge_attacks.py).
SLOW_SOURCES = tuple(f"127.0.0.{10 + index}" for index in range(10))
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


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
    # The edge's whole time covers the gateway's, which includes a model-server call.
    # nginx rounds both to the millisecond, each from its own clock reading.
    assert 0 < float(line["upstream_s"]) <= line["duration_s"] + 0.001 < 10
    assert line["bytes"] > 0 and line["key_id"] is None
    insane = requests.post(f"{local_stack.edge}/v1/sentiment", json=body, headers={"X-Request-ID": "a b\"c"},
                           timeout=10).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", insane)  # replaced by the edge, not passed on


def test_the_edge_serves_the_api_and_answers_its_own_errors_in_the_gateway_shape(local_stack):
    response = requests.post(f"{local_stack.edge}/v1/sentiment", json={"text": "A wonderful film."}, timeout=10)
    assert response.status_code == 200 and response.json()["predictions"][0]["label"] in ("positive", "negative")
    too_large = requests.post(f"{local_stack.edge}/v1/sentiment", data=b"x" * (1_048_576 + 1),
                              headers={"Content-Type": "application/json"}, timeout=10)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"


def assert_security_headers(answer: requests.Response, what: str) -> None:
    for header, value in SECURITY_HEADERS.items():
        assert answer.headers.get(header) == value, (what, header, answer.headers)
    policy = dict(part.strip().split(" ", 1) for part in answer.headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'", (what, policy)
    assert policy["frame-ancestors"] == "'none'", (what, policy)


def test_every_answer_of_the_edge_carries_the_security_headers(local_stack, tmp_path):
    body = {"text": "A wonderful film."}
    answers = {
        "demo page": requests.get(f"{local_stack.edge}/", timeout=10),
        "API docs": requests.get(f"{local_stack.edge}/docs", timeout=10),
        "prediction": requests.post(f"{local_stack.edge}/v1/sentiment", json=body, timeout=10),
        "the gateway's error": requests.post(f"{local_stack.edge}/v1/sentiment", json={}, timeout=10),
        "the edge's error": requests.get(f"{local_stack.edge}/metrics", timeout=10),
    }
    edge = start_edge(f"127.0.0.1:{free_port()}", tmp_path / "edge")  # no gateway behind it
    try:
        answers["no gateway"] = requests.post(f"{edge.http}/v1/sentiment", json=body, timeout=10)
    finally:
        edge.process.stop()
    assert [answer.status_code for answer in answers.values()] == [200, 200, 200, 400, 404, 503]
    assert answers["no gateway"].headers["Retry-After"] == "1"
    for what, answer in answers.items():
        assert_security_headers(answer, what)
        assert "Strict-Transport-Security" not in answer.headers, what  # plain HTTP


def test_slow_bodies_leave_the_http_api_available_through_the_edge(local_stack):
    # The level to come back to is that of a service that has served: the workers'
    # first requests open connections and fill caches, which is not a leak.
    NormalClient(f"{local_stack.edge}/v1/sentiment", duration=3).run()
    fds_before, rss_before = local_stack.http_server_footprint()
    with SlowClients("127.0.0.1", local_stack.edge_port, SLOW_CONNECTIONS, TRICKLE_SECONDS,
                     sources=SLOW_SOURCES) as slow:
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


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return make_certificates(tmp_path_factory.mktemp("tls"))


def test_https_at_the_edge_is_verified_and_plain_http_redirects(local_stack, certificates, tmp_path):
    edge = start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge",
                      tls_dir=str(certificates.server_dir), http="redirect", public_host="sentiment.test")
    try:
        body = {"text": "A wonderful film."}
        secure = requests.post(f"{edge.https}/v1/sentiment", json=body, verify=certificates.ca, timeout=10)
        assert secure.status_code == 200 and secure.json()["predictions"][0]["label"] == "positive"
        assert_security_headers(secure, "HTTPS")
        assert secure.headers["Strict-Transport-Security"] == "max-age=63072000"
        with pytest.raises(requests.exceptions.SSLError):  # a CA the client was not given
            requests.post(f"{edge.https}/v1/sentiment", json=body, timeout=10)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            context = ssl.create_default_context(cafile=certificates.ca)
            context.minimum_version = context.maximum_version = version
            with socket.create_connection(("127.0.0.1", edge.https_port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == version.name.replace("_", ".")
        plain_to_tls = requests.get(f"http://127.0.0.1:{edge.https_port}/readyz", timeout=10)
        assert plain_to_tls.status_code == 400 and plain_to_tls.json()["error"]["code"] == "bad_request"
        # GET and HEAD go to the configured host, whatever Host the request names.
        for method in ("GET", "HEAD"):
            redirected = requests.request(method, f"{edge.http}/docs?x=1", headers={"Host": "evil.example"},
                                          allow_redirects=False, timeout=10)
            assert redirected.status_code == 308
            assert redirected.headers["Location"] == f"https://sentiment.test:{edge.https_port}/docs?x=1"
            assert_security_headers(redirected, "redirect")
            assert "Strict-Transport-Security" not in redirected.headers
        # Anything else has already sent its body and key in clear: refused, not redirected.
        refused = requests.post(f"{edge.http}/v1/sentiment", json=body, allow_redirects=False, timeout=10,
                                headers={"Authorization": f"Bearer {new_key()}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "https_required"
        assert "Location" not in refused.headers
        assert requests.get(f"{edge.http}/readyz", timeout=10).status_code == 200  # probes stay plain
    finally:
        edge.process.stop()


@pytest.mark.parametrize("settings, problem", [
    ({"tls_dir": "/nonexistent"}, "no readable tls.crt"),
    ({"http": "redirect"}, "needs HTTPS"),
    ({"rate_limit": "fast"}, "EDGE_RATE_LIMIT=fast: must be a whole number"),
    ({"rate_limit": "100", "address_rate_limit": "50"},
     "EDGE_ADDRESS_RATE_LIMIT=50: must be at least EDGE_RATE_LIMIT"),
    ({"max_connections_per_address": "0"}, "EDGE_MAX_CONNECTIONS_PER_ADDRESS=0: must be at least 1"),
    ({"workers": "auto"}, "EDGE_WORKERS=auto: must be a whole number"),
    ({"real_ip_from": "10.0.0.0/8 deny;"}, "EDGE_REAL_IP_FROM: deny; is not an address or a CIDR"),
])
def test_the_edge_refuses_to_start_on_bad_settings(local_stack, tmp_path, settings, problem):
    with pytest.raises(EdgeRefusedToStart) as refused:
        start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge", **settings)
    assert refused.value.exit_code == 2 and problem in refused.value.output


@pytest.mark.parametrize("host, problem", [
    (None, "EDGE_HTTP=redirect needs EDGE_PUBLIC_HOST"),
    ("evil.example/$host", "EDGE_PUBLIC_HOST=evil.example/$host: must be a host name"),
])
def test_redirects_need_a_configured_host_name(local_stack, certificates, tmp_path, host, problem):
    settings = {"tls_dir": str(certificates.server_dir), "http": "redirect"}
    if host:
        settings["public_host"] = host
    with pytest.raises(EdgeRefusedToStart) as refused:
        start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge", **settings)
    assert refused.value.exit_code == 2 and problem in refused.value.output


def test_the_edge_limits_each_client_by_api_key_else_by_address(local_stack, tmp_path):
    rate = 20
    # Every client here shares 127.0.0.1: the per-address bound is set out of the way.
    edge = start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge", rate_limit=str(rate),
                      rate_burst=str(rate), address_rate_limit="1000", address_rate_burst="1000")
    url, body = f"{edge.http}/v1/sentiment", {"text": "A wonderful film."}
    stop = threading.Event()

    def flood(headers: dict[str, str]) -> list[requests.Response]:
        session, answers = requests.Session(), []
        while not stop.is_set():
            answers.append(session.post(url, json=body, headers=headers, timeout=10))
        return answers

    try:
        with ThreadPoolExecutor(8) as pool:
            flooding_key = new_key()
            floods = [pool.submit(flood, {"Authorization": f"Bearer {flooding_key}"}) for _ in range(4)]
            floods += [pool.submit(flood, {}) for _ in range(2)]  # no key: limited by address
            calm, latencies, calm_key = [], [], new_key()
            for _ in range(25):  # a second client, well under the rate
                started = time.perf_counter()
                calm.append(requests.post(url, json=body, headers={"X-API-Key": calm_key}, timeout=10))
                latencies.append(time.perf_counter() - started)
                time.sleep(1 / (rate / 2))
            probes = [requests.get(f"{edge.http}/readyz", timeout=10).status_code for _ in range(50)]
            stop.set()
            keyed = [answer for future in floods[:4] for answer in future.result()]
            by_address = [answer for future in floods[4:] for answer in future.result()]
    finally:
        stop.set()
        edge.process.stop()
    limited = [answer for answer in keyed if answer.status_code == 429]
    print(f"\nedge limit {rate}/s: flooding key {len(limited)} of {len(keyed)} refused; "
          f"second key p99 {max(latencies) * 1000:.0f} ms")
    assert len(limited) > len(keyed) / 2
    assert {answer.status_code for answer in keyed} == {200, 429}
    assert limited[0].json()["error"]["code"] == "rate_limited" and limited[0].headers["Retry-After"] == "1"
    assert_security_headers(limited[0], "429")
    assert 429 in {answer.status_code for answer in by_address}
    assert [answer.status_code for answer in calm] == [200] * 25
    assert max(latencies) < 1.0
    assert probes == [200] * 50


def statuses_from(source: str, port: int, headers: list[dict[str, str]]) -> list[int]:
    """One prediction per header set, in turn, over one connection from the loopback address ``source``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    statuses = []
    for extra in headers:
        connection.request("POST", "/v1/sentiment", b'{"text": "A wonderful film."}',
                           {"Content-Type": "application/json", **extra})
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    return statuses


def test_only_keys_of_the_gateways_format_get_a_bucket_and_every_address_has_one(local_stack, tmp_path):
    """Per key: 1 a second, burst 5; per address: 2 a second, burst 10. The gateway here takes any key."""
    edge = start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge",
                      rate_limit="1", rate_burst="5", address_rate_limit="2", address_rate_burst="10")
    try:
        # Each from an address of its own, so that each starts with full buckets.
        malformed = statuses_from("127.0.0.21", edge.http_port, [{"X-API-Key": f"k{n}"} for n in range(12)])
        made_up = statuses_from("127.0.0.22", edge.http_port, [{"X-API-Key": new_key()} for _ in range(15)])
        # The gateway reads the Bearer key when there is one, even a malformed one; so does the edge.
        beside = statuses_from("127.0.0.23", edge.http_port, [
            {"Authorization": "Bearer not-a-key", "X-API-Key": new_key()} for _ in range(12)])
        key = new_key()
        one_key = statuses_from("127.0.0.24", edge.http_port, [
            {"Authorization": f"Bearer {key}", "X-API-Key": new_key()} for _ in range(12)])
    finally:
        edge.process.stop()
    # Malformed keys are counted with their address at the per-key rate: the burst, then 429.
    assert malformed[:6] == [200] * 6 and malformed[7:] == [429] * 5, malformed
    # Well-formed made-up keys get buckets of their own, but every request counts against the address.
    assert made_up[:11] == [200] * 11 and made_up[12:] == [429] * 3, made_up
    assert beside[:6] == [200] * 6 and beside[7:] == [429] * 5, beside
    assert one_key[:6] == [200] * 6 and one_key[7:] == [429] * 5, one_key


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(local_stack, tmp_path):
    edge = start_edge(f"127.0.0.1:{local_stack.gateway_port}", tmp_path / "edge",
                      rate_limit="1", rate_burst="2", real_ip_from="127.0.0.1, 10.0.0.0/8")
    try:
        first = statuses_from("127.0.0.1", edge.http_port, [{"X-Forwarded-For": "203.0.113.7"}] * 5)
        proxied = "203.0.113.8, 10.1.2.3"  # the client, then a second trusted proxy
        second = statuses_from("127.0.0.1", edge.http_port, [{"X-Forwarded-For": proxied}] * 5)
        log = edge.process.log
        wait_until(lambda: '"remote": "203.0.113.8"' in log.read_text(), 5, "the edge's access log")
    finally:
        edge.process.stop()
    # One proxy, two clients: each its own address's bucket (burst 2).
    assert first[:3] == [200] * 3 and first[4:] == [429], first
    assert second[:3] == [200] * 3 and second[4:] == [429], second
