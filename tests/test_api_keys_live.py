"""API keys with real gateway processes: the key file that the HTTP workers and the gRPC
server share, edited while they run."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
from prometheus_text import metric
from reviews import POSITIVE

from harness.processes import ROOT, free_port, gateway_env, start_gateway, start_grpc_gateway, wait_until
from serving.client import SentimentClient
from serving.gateway.access.api_keys import hash_line, new_key


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the loopback TCP connection from ``client_port``."""
    sockets = {f"socket:[{fields[9]}]" for table in ("/proc/net/tcp", "/proc/net/tcp6")
               for fields in map(str.split, Path(table).read_text().splitlines()[1:])
               if int(fields[1].rsplit(":", 1)[1], 16) == server_port
               and int(fields[2].rsplit(":", 1)[1], 16) == client_port}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) in sockets:
                    return pid
            except OSError:  # closed meanwhile
                continue
    return None


def test_keys_are_checked_rotated_and_revoked_without_a_restart(model_server, models_dir, tmp_path):
    old, new = new_key(), new_key()
    key_file = tmp_path / "api-keys"
    key_file.write_text(f"{hash_line('old', old)}\n{hash_line('new', new)}\n")
    gateway = start_gateway(model_server.address, models_dir, tmp_path, GATEWAY_API_KEYS_FILE=str(key_file))
    grpc_gateway = start_grpc_gateway(model_server.address, models_dir, gateway.metrics_dir, tmp_path,
                                      GATEWAY_API_KEYS_FILE=str(key_file))

    def worker_pids() -> list[int]:
        return [int(pid) for pid in subprocess.run(["pgrep", "-P", str(gateway.process.pid)],
                                                   capture_output=True, text=True).stdout.split()]

    workers: list[int] = []
    refusals: Counter[tuple[str, str]] = Counter()  # (transport, reason) of every refusal this test saw

    def answer(key: str | None) -> tuple[int, int | None]:
        """The status of one request on a connection of its own, and the worker process that answered it."""
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        try:
            connection.connect()
            headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
            connection.request("POST", "/v1/sentiment", json.dumps({"text": POSITIVE}), headers)
            response = connection.getresponse()
            response.read()
            worker = connection_owner(gateway.port, connection.sock.getsockname()[1], workers)
        finally:
            connection.close()
        if response.status == 401:
            refusals["http", "unknown" if key else "missing"] += 1
        return response.status, worker

    def statuses_by_worker(key: str | None) -> dict[int | None, set[int]]:
        """Each worker's answers to ``key``, over new connections until every worker has answered."""
        seen: dict[int | None, set[int]] = {}
        for _ in range(100):
            status, worker = answer(key)
            seen.setdefault(worker, set()).add(status)
            if set(seen) == set(workers):
                break
        return seen

    def everywhere(status: int) -> dict[int | None, set[int]]:
        return {worker: {status} for worker in workers}

    def grpc_code(key: str | None) -> grpc.StatusCode:
        with SentimentClient(grpc_gateway.target, api_key=key) as client:
            try:
                client.predict([POSITIVE])
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                    refusals["grpc", "unknown" if key else "missing"] += 1
                return error.code()
            return grpc.StatusCode.OK

    def scrape() -> str:
        return requests.get(f"{gateway.url}/metrics", timeout=10).text  # both servers' metrics: one folder

    try:
        wait_until(lambda: len(worker_pids()) == 2, 10, "both HTTP workers")
        workers += worker_pids()
        before = scrape()
        assert requests.get(f"{gateway.url}/readyz", timeout=10).status_code == 200  # probes stay open
        # Both keys valid during a rotation, in every worker.
        assert statuses_by_worker(old) == statuses_by_worker(new) == everywhere(200)
        assert statuses_by_worker(None) == statuses_by_worker("sk_wrong") == everywhere(401)
        assert grpc_code(None) == grpc_code("sk_wrong") == grpc.StatusCode.UNAUTHENTICATED
        assert grpc_code(old) == grpc_code(new) == grpc.StatusCode.OK

        key_file.write_text(hash_line("new", new) + "\n")  # the rotation ends: "old" revoked
        os.utime(key_file, ns=(time.time_ns(), time.time_ns() + 10**9))
        wait_until(lambda: statuses_by_worker(old) == everywhere(401), 10,
                   "the old key refused by every worker")
        wait_until(lambda: grpc_code(old) == grpc.StatusCode.UNAUTHENTICATED, 10, "the old key refused over gRPC")
        # Reloaded for good: the old key stays refused and the new one accepted, everywhere.
        assert statuses_by_worker(old) == everywhere(401) and statuses_by_worker(new) == everywhere(200)
        assert grpc_code(old) == grpc.StatusCode.UNAUTHENTICATED and grpc_code(new) == grpc.StatusCode.OK

        after = scrape()
        for transport in ("http", "grpc"):
            for reason in ("missing", "unknown"):
                labels = {"transport": transport, "reason": reason}
                counted = (metric(after, "sentiment_auth_failures_total", **labels)
                           - metric(before, "sentiment_auth_failures_total", **labels))
                assert counted == refusals[transport, reason] > 0, labels
        logs = gateway.process.log.read_text() + grpc_gateway.process.log.read_text()
        assert old not in logs and new not in logs  # keys are never logged
    finally:
        grpc_gateway.process.stop()
        gateway.process.stop()


@pytest.mark.parametrize("server", ["serving.gateway.api.http_server", "serving.gateway.api.grpc_server"])
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
