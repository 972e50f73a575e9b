"""API keys with real gateway processes: the key file that the HTTP workers and the gRPC
server share, edited while they run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
from reviews import POSITIVE

from harness.processes import ROOT, free_port, gateway_env, start_gateway, start_grpc_gateway, wait_until
from serving.client import SentimentClient
from serving.gateway.api_keys import hash_line, new_key


def test_keys_are_checked_rotated_and_revoked_without_a_restart(model_server, models_dir, tmp_path):
    old, new = new_key(), new_key()
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"{hash_line('old', old)}\n{hash_line('new', new)}\n")
    gateway = start_gateway(model_server.address, models_dir, tmp_path, GATEWAY_API_KEYS_FILE=str(key_file))
    grpc_gateway = start_grpc_gateway(model_server.address, models_dir, gateway.metrics_dir, tmp_path,
                                      GATEWAY_API_KEYS_FILE=str(key_file))
    url = f"{gateway.url}/v1/sentiment"

    def status(key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(url, json={"text": POSITIVE}, headers=headers, timeout=10).status_code

    def grpc_code(key: str | None) -> grpc.StatusCode:
        with SentimentClient(grpc_gateway.target, api_key=key) as client:
            try:
                client.predict([POSITIVE])
            except grpc.RpcError as error:
                return error.code()
            return grpc.StatusCode.OK

    try:
        assert requests.get(f"{gateway.url}/readyz", timeout=10).status_code == 200  # probes stay open
        # Both keys valid during a rotation, in every worker (20 requests reach both).
        assert {status(key) for key in (old, new) for _ in range(10)} == {200}
        assert {status(None), status("sk_wrong")} == {401}
        assert grpc_code(None) == grpc_code("sk_wrong") == grpc.StatusCode.UNAUTHENTICATED
        assert grpc_code(old) == grpc_code(new) == grpc.StatusCode.OK

        key_file.write_text(hash_line("new", new) + "\n")  # the rotation ends: "old" revoked
        os.utime(key_file, ns=(time.time_ns(), time.time_ns() + 10**9))
        wait_until(lambda: {status(old) for _ in range(6)} == {401}, 10, "the old key refused by every worker")
        wait_until(lambda: grpc_code(old) == grpc.StatusCode.UNAUTHENTICATED, 10, "the old key refused over gRPC")
        assert {status(new) for _ in range(10)} == {200} and grpc_code(new) == grpc.StatusCode.OK

        metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
        assert 'sentiment_auth_failures_total{reason="missing",transport="http"}' in metrics
        logs = gateway.process.log.read_text() + grpc_gateway.process.log.read_text()
        assert old not in logs and new not in logs  # keys are never logged
    finally:
        grpc_gateway.process.stop()
        gateway.process.stop()


@pytest.mark.parametrize("server", ["serving.gateway.http_server", "serving.gateway.grpc_server"])
@pytest.mark.parametrize("content, problem", [("not a key line\n", "line 1: expected"),
                                              (None, "cannot read the API key file")])
def test_a_broken_or_missing_key_file_stops_the_start_with_the_problem_named(
        model_server, models_dir, tmp_path, server, content, problem):
    key_file = tmp_path / "api-keys"
    if content is not None:
        key_file.write_text(content)
    environ = {**os.environ, **gateway_env(model_server.address, models_dir, tmp_path),
               "GATEWAY_API_KEYS_FILE": str(key_file), "GATEWAY_HTTP_PORT": str(free_port()),
               "GATEWAY_GRPC_PORT": str(free_port())}
    started = subprocess.run([sys.executable, "-m", server], cwd=ROOT, env=environ,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2 and problem in started.stderr, started.stderr[-2000:]


def test_a_flooding_key_is_limited_while_another_key_keeps_its_latency(model_server, models_dir, tmp_path):
    """Key "noisy" floods from 8 threads; key "quiet" sends 5 requests a second beside it:
    every quiet request succeeds with a p99 under 1 s, and the noisy key gets 429s."""
    noisy, quiet = new_key(), new_key()
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"{hash_line('noisy', noisy)}\n{hash_line('quiet', quiet)}\n")
    gateway = start_gateway(model_server.address, models_dir, tmp_path, GATEWAY_API_KEYS_FILE=str(key_file),
                            GATEWAY_HTTP_WORKERS="1", GATEWAY_RATE_LIMIT_PER_KEY="20", GATEWAY_RATE_LIMIT_BURST="20")
    url = f"{gateway.url}/v1/sentiment"
    stop = threading.Event()
    noisy_statuses: Counter = Counter()

    def flood() -> None:
        session = requests.Session()
        while not stop.is_set():
            noisy_statuses[session.post(url, json={"text": POSITIVE}, headers={"X-API-Key": noisy}, timeout=10).status_code] += 1

    try:
        with ThreadPoolExecutor(8) as pool:
            for _ in range(8):
                pool.submit(flood)
            wait_until(lambda: noisy_statuses[429] > 0, 10, "the noisy key past its burst")
            quiet_statuses, latencies = Counter(), []
            session = requests.Session()
            for _ in range(25):
                started = time.perf_counter()
                quiet_statuses[session.post(url, json={"text": POSITIVE}, headers={"X-API-Key": quiet},
                                            timeout=10).status_code] += 1
                latencies.append(time.perf_counter() - started)
                time.sleep(0.2)
            stop.set()
        assert quiet_statuses == Counter({200: 25})
        assert float(np.percentile(latencies, 99)) < 1.0, latencies
        assert noisy_statuses[429] > noisy_statuses[200] > 0, noisy_statuses
        metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
        assert 'key_id="noisy"' in metrics and 'key_id="quiet"' not in metrics
    finally:
        stop.set()
        gateway.process.stop()
