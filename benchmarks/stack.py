"""The services under test (model server, gateway over HTTP and gRPC, naive server) as
child processes on free loopback ports, shared by the benchmark and the soak run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"lstm": "imdb_lstm", "simple_rnn": "imdb_simple_rnn"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on port {port}")


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


class Stack:
    """The model server, gateway (HTTP + gRPC) and naive servers as child processes."""

    def __init__(self, models_dir: Path, log_dir: Path, gunicorn_workers: int) -> None:
        self.processes: list[subprocess.Popen] = []
        self.log_dir = log_dir
        self.ms_port, self.ms_rest = free_port(), free_port()
        self.http_port, self.grpc_port = free_port(), free_port()
        self._start("model_server", [
            "-m", "serving.model_server", "--port", str(self.ms_port), "--rest_api_port", str(self.ms_rest),
            "--model_config_file", "deploy/tfserving/models.config", "--base_path_map", f"/models={models_dir}",
            "--enable_batching", "--batching_parameters_file", "deploy/tfserving/batching_parameters.txt",
        ])
        for name in MODELS.values():
            wait_http(f"http://127.0.0.1:{self.ms_rest}/v1/models/{name}")
        metrics_dir = log_dir / "metrics"
        metrics_dir.mkdir()
        env = {
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GATEWAY_MODEL_SERVER": f"127.0.0.1:{self.ms_port}",
            "GATEWAY_MODELS_DIR": str(models_dir), "GUNICORN_BIND": f"127.0.0.1:{self.http_port}",
            "GUNICORN_WORKERS": str(gunicorn_workers), "GATEWAY_GRPC_PORT": str(self.grpc_port),
        }
        self._start("gateway", ["-m", "gunicorn", "-c", "serving/gateway/gunicorn_conf.py",
                                "serving.gateway.wsgi:app"], env)
        self._start("grpc_gateway", ["-m", "serving.gateway.grpc_server"], env)
        wait_http(f"http://127.0.0.1:{self.http_port}/readyz")
        wait_port(self.grpc_port)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the model server and by the HTTP gateway (master + workers)."""
        model_server, gateway = self.processes[0].pid, self.processes[1].pid
        workers = subprocess.run(["pgrep", "-P", str(gateway)], capture_output=True, text=True).stdout.split()
        return {
            "model_server": _cpu_seconds([model_server]),
            "gateway": _cpu_seconds([gateway, *map(int, workers)]),
        }

    def start_naive(self, version_dir: Path) -> int:
        port = free_port()
        self._start(f"naive_{port}", ["-m", "benchmarks.naive_server", str(version_dir), str(port)])
        wait_port(port)
        return port

    def _start(self, name: str, args: list[str], env: dict | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("wb")
        self.processes.append(subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        ))

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def latest_version(models_dir: Path, name: str) -> Path:
    versions = sorted((p for p in (models_dir / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        raise SystemExit(f"no exported version under {models_dir / name}: run `make models` first")
    return versions[-1]
