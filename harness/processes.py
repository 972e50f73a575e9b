"""The model server and the gateway (HTTP under granian, gRPC) as child processes on
free loopback ports, started with the project's own config files and waited for."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from text_contract.layout import SERVED_MODELS

ROOT = Path(__file__).resolve().parents[1]
IMDB_TARBALL = ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz"
RT_POLARITY_TARBALL = IMDB_TARBALL.parent / "rt-polarity_v1.0.tar.gz"
MODELS_CONFIG = ROOT / "deploy" / "tfserving" / "models.config"
BATCHING_FILE = ROOT / "deploy" / "tfserving" / "batching_parameters.txt"
MONITORING_FILE = ROOT / "deploy" / "tfserving" / "monitoring.config"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, poll_seconds: float = 0.2) -> None:
    """Poll ``check`` every ``poll_seconds`` until it is true; connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:  # requests' errors are OSErrors too
            pass
        time.sleep(poll_seconds)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def responds(url: str) -> Callable[[], bool]:
    """A ``wait_until`` check: ``url`` answers GET with a 2xx status."""
    return lambda: requests.get(url, timeout=1).ok


def accepts_connections(port: int) -> Callable[[], bool]:
    """A ``wait_until`` check: something listens on the loopback ``port``."""

    def check() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    return check


@dataclass
class Process:
    popen: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

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


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    """``python <args>`` from the repository root, output appended to ``log``."""
    with log.open("ab") as output:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
            stdout=output, stderr=subprocess.STDOUT,
        )
    return Process(popen, log)


@dataclass
class ModelServer:
    process: Process
    grpc_port: int
    rest_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"


def start_model_server(
    models_dir: Path, log_dir: Path, grpc_port: int | None = None, rest_port: int | None = None,
    config: Path = MODELS_CONFIG, poll_seconds: float = 0.5, batching: bool = True,
    wait_for: Iterable[str] = SERVED_MODELS.values(), xla: bool = True, batching_file: Path = BATCHING_FILE,
    access_log: bool = False, flags: Sequence[str] = (),
) -> ModelServer:
    """Start the model server with deploy/tfserving's files (and ``flags`` besides); return once
    every version of the ``wait_for`` models that the config wants is loaded."""
    grpc_port, rest_port = grpc_port or free_port(), rest_port or free_port()
    args = [
        "-m", "serving.model_server",
        "--port", str(grpc_port), "--rest_api_port", str(rest_port),
        "--model_config_file", str(config), "--base_path_map", f"/models={models_dir}",
        "--file_system_poll_wait_seconds", str(poll_seconds),
        "--monitoring_config_file", str(MONITORING_FILE),
    ]
    if batching:
        args += ["--enable_batching", "--batching_parameters_file", str(batching_file)]
    if xla:
        args += ["--xla_cpu_compilation_enabled=true"]
    if access_log:
        args += ["--access_log"]
    args += list(flags)
    process = spawn(args, log_dir / f"model_server_{grpc_port}.log")
    server = ModelServer(process, grpc_port, rest_port)
    for name in wait_for:
        wait_until(settled(f"{server.rest}/v1/models/{name}"), 120, f"model server (log {process.log})")
    return server


def settled(status_url: str) -> Callable[[], bool]:
    """A ``wait_until`` check: a model's status (TF Serving's REST API) shows a version
    AVAILABLE and none still to load. The model server answers once the newest version is
    loaded and loads older ones afterwards, so answering is not enough for a test that
    uses an older version."""

    def check() -> bool:
        response = requests.get(status_url, timeout=1)
        if not response.ok:
            return False
        states = {status["state"] for status in response.json()["model_version_status"]}
        return "AVAILABLE" in states and not states & {"START", "LOADING", "UNLOADING"}

    return check


@dataclass
class Listening:
    """A started process and the loopback port it serves on."""

    process: Process
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Gateway(Listening):
    metrics_dir: Path

    @property
    def url(self) -> str:
        return f"http://{self.target}"


def gateway_env(model_server_address: str, models_dir: Path, metrics_dir: Path) -> dict[str, str]:
    """The gateway's settings for a local run: short deadlines and caches, so faults show fast."""
    return {
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "GATEWAY_MODEL_SERVER": model_server_address,
        "GATEWAY_MODELS_DIR": str(models_dir),
        "GATEWAY_RPC_TIMEOUT_SECONDS": "5",
        "GATEWAY_STATUS_CACHE_SECONDS": "0.2",
        "GATEWAY_HEALTH_CHECK_SECONDS": "0.2",
    }


def start_gateway(model_server_address: str, models_dir: Path, log_dir: Path, **env: str) -> Gateway:
    """The HTTP gateway (``serving.gateway.api.http_server``; 2 workers unless ``GATEWAY_HTTP_WORKERS`` says otherwise)."""
    port = free_port()
    metrics_dir = log_dir / f"metrics_{port}"
    metrics_dir.mkdir()
    environ = {
        **gateway_env(model_server_address, models_dir, metrics_dir),
        "GATEWAY_HTTP_PORT": str(port),
        "GATEWAY_HTTP_WORKERS": "2",
        **env,
    }
    process = spawn(
        ["-m", "serving.gateway.api.http_server"],
        log_dir / f"gateway_{port}.log", environ,
    )
    gateway = Gateway(process, port, metrics_dir)
    wait_until(responds(f"{gateway.url}/healthz"), 30, f"gateway (log {process.log})")
    return gateway


def start_grpc_gateway(
    model_server_address: str, models_dir: Path, metrics_dir: Path, log_dir: Path, ca_file: Path | None = None,
    **env: str,
) -> Listening:
    """The gateway's gRPC API; returns once its health service reports SERVING (asked over
    TLS, verified with ``ca_file``, when the settings in ``env`` turn TLS on)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    environ = {
        **gateway_env(model_server_address, models_dir, metrics_dir),
        "GATEWAY_GRPC_PORT": str(port),
        **env,
    }
    process = spawn(["-m", "serving.gateway.api.grpc_server"], log_dir / f"grpc_gateway_{port}.log", environ)
    channel = (grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca_file.read_bytes()))
               if ca_file else grpc.insecure_channel(f"127.0.0.1:{port}"))
    stub = health_pb2_grpc.HealthStub(channel)

    def serving() -> bool:
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            return False
        return status == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_until(serving, 30, f"gRPC gateway (log {process.log})")
    finally:
        channel.close()
    return Listening(process, port)
