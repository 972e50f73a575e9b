"""Shared fixtures: a small model trained once per session with the real CLI, and real
model server and gateway processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
MODELS_CONFIG = ROOT / "deploy" / "tfserving" / "models.config"
BATCHING_FILE = ROOT / "deploy" / "tfserving" / "batching_parameters.txt"
MONITORING_FILE = ROOT / "deploy" / "tfserving" / "monitoring.config"
GUNICORN_CONF = ROOT / "serving" / "gateway" / "gunicorn_conf.py"

# Small but real: enough reviews for the models to separate clear cases.
TRAIN_ARGS = ["--train-limit", "4000", "--test-limit", "300", "--epochs", "3", "--batch-size", "32", "--seed", "7"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (requests.RequestException, OSError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def run_training(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", "--data", str(SHARED_TARBALL), "--out", str(out), *TRAIN_ARGS, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="session")
def shared_tarball() -> Path:
    assert SHARED_TARBALL.is_file(), f"the test dataset is missing: {SHARED_TARBALL}"
    return SHARED_TARBALL


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, shared_tarball) -> Path:
    out = tmp_path_factory.mktemp("models")
    result = run_training(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@dataclass
class Process:
    popen: subprocess.Popen
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Signal the process and wait; a process that outlives ``timeout`` is killed and reported."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise


@dataclass
class ModelServer:
    process: Process
    grpc_port: int
    rest_port: int
    args: list[str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"


def start_model_server(
    models_dir: Path, log_dir: Path, grpc_port: int | None = None, rest_port: int | None = None,
    config: Path = MODELS_CONFIG,
) -> ModelServer:
    grpc_port, rest_port = grpc_port or free_port(), rest_port or free_port()
    args = [
        sys.executable, "-m", "serving.model_server",
        "--port", str(grpc_port), "--rest_api_port", str(rest_port),
        "--model_config_file", str(config), "--base_path_map", f"/models={models_dir}",
        "--file_system_poll_wait_seconds", "0.5",
        "--enable_batching", "--batching_parameters_file", str(BATCHING_FILE),
        "--monitoring_config_file", str(MONITORING_FILE),
    ]
    log = log_dir / f"model_server_{grpc_port}.log"
    popen = subprocess.Popen(args, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    server = ModelServer(Process(popen, log), grpc_port, rest_port, args)
    wait_until(
        lambda: requests.get(f"{server.rest}/v1/models/imdb_lstm", timeout=1).ok
        and requests.get(f"{server.rest}/v1/models/imdb_simple_rnn", timeout=1).ok,
        90, f"model server (log {log})",
    )
    return server


@dataclass
class Gateway:
    process: Process
    port: int
    metrics_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_gateway(model_server_address: str, models_dir: Path, log_dir: Path, **env: str) -> Gateway:
    port = free_port()
    metrics_dir = log_dir / f"metrics_{port}"
    metrics_dir.mkdir()
    environ = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_MODEL_SERVER": model_server_address,
        "GATEWAY_MODELS_DIR": str(models_dir),
        "GATEWAY_RPC_TIMEOUT_SECONDS": "5",
        "GATEWAY_STATUS_CACHE_SECONDS": "0.2",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        **env,
    }
    log = log_dir / f"gateway_{port}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "serving.gateway.wsgi:app"],
        cwd=ROOT, env=environ, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    gateway = Gateway(Process(popen, log), port, metrics_dir)
    wait_until(lambda: requests.get(f"{gateway.url}/healthz", timeout=1).ok, 30, f"gateway (log {log})")
    return gateway


@pytest.fixture(scope="session")
def model_server(models_dir, tmp_path_factory) -> Iterator[ModelServer]:
    server = start_model_server(models_dir, tmp_path_factory.mktemp("logs"))
    yield server
    server.process.stop()


@pytest.fixture(scope="session")
def gateway(model_server, models_dir, tmp_path_factory) -> Iterator[Gateway]:
    gw = start_gateway(model_server.address, models_dir, tmp_path_factory.mktemp("gateway"))
    wait_until(lambda: requests.get(f"{gw.url}/readyz", timeout=2).ok, 30, "gateway readiness")
    yield gw
    gw.process.stop()


@dataclass
class GrpcGateway:
    process: Process
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_grpc_gateway(
    model_server_address: str, models_dir: Path, metrics_dir: Path, log_dir: Path, **env: str
) -> GrpcGateway:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    environ = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_MODEL_SERVER": model_server_address,
        "GATEWAY_MODELS_DIR": str(models_dir),
        "GATEWAY_GRPC_PORT": str(port),
        "GATEWAY_STATUS_CACHE_SECONDS": "0.2",
        "GATEWAY_HEALTH_CHECK_SECONDS": "0.2",
        **env,
    }
    log = log_dir / f"grpc_gateway_{port}.log"
    popen = subprocess.Popen(
        [sys.executable, "-m", "serving.gateway.grpc_server"],
        cwd=ROOT, env=environ, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            return False
        return status == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_until(serving, 30, f"gRPC gateway (log {log})")
    finally:
        channel.close()
    return GrpcGateway(Process(popen, log), port)


@pytest.fixture(scope="session")
def grpc_gateway(gateway, model_server, models_dir) -> Iterator[GrpcGateway]:
    # Shares the HTTP gateway's metrics directory: one /metrics shows both transports.
    server = start_grpc_gateway(model_server.address, models_dir, gateway.metrics_dir, gateway.metrics_dir.parent)
    yield server
    server.process.stop()
