"""The services under test (model server, gateway over HTTP and gRPC, naive server) as
child processes, shared by the benchmark and the soak run."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from harness.processes import (
    Process,
    accepts_connections,
    free_port,
    responds,
    spawn,
    start_gateway,
    start_grpc_gateway,
    start_model_server,
    wait_until,
)
from text_contract.layout import version_dirs

# The gateway's defaults, not harness's quick-reacting test settings.
GATEWAY_DEFAULTS = {"GATEWAY_STATUS_CACHE_SECONDS": "1", "GATEWAY_HEALTH_CHECK_SECONDS": "1"}


def _cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in listed]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its children (a server's master and workers)."""
    return _cpu_seconds([pid, *child_pids(pid)])


class Stack:
    """The model server, gateway (HTTP + gRPC) and naive servers as child processes."""

    def __init__(self, models_dir: Path, log_dir: Path, http_workers: int) -> None:
        self.log_dir = log_dir
        self.model_server = start_model_server(models_dir, log_dir)
        self.gateway = start_gateway(
            self.model_server.address, models_dir, log_dir,
            GATEWAY_HTTP_WORKERS=str(http_workers), **GATEWAY_DEFAULTS,
        )
        self.grpc_gateway = start_grpc_gateway(
            self.model_server.address, models_dir, self.gateway.metrics_dir, log_dir, **GATEWAY_DEFAULTS
        )
        self.processes: list[Process] = [
            self.model_server.process, self.gateway.process, self.grpc_gateway.process,
        ]
        wait_until(responds(f"{self.gateway.url}/readyz"), 60, "gateway readiness")

    @property
    def http_url(self) -> str:
        return self.gateway.url

    @property
    def grpc_target(self) -> str:
        return self.grpc_gateway.target

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by the model server, the HTTP gateway (server + workers)
        and the gRPC gateway."""
        gateway = self.gateway.process.pid
        return {
            "model_server": _cpu_seconds([self.model_server.process.pid]),
            "gateway": tree_cpu_seconds(gateway),
            "grpc_gateway": _cpu_seconds([self.grpc_gateway.process.pid]),
        }

    def batches(self, model_name: str) -> tuple[float, float]:
        """Batches the model server has run for ``model_name`` so far, and their rows."""
        url = f"{self.model_server.rest}/monitoring/prometheus/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        totals = {}
        for kind in ("count", "sum"):
            found = re.search(rf'processed_batch_size_{kind}{{model_name="{model_name}"}} (\S+)', text)
            totals[kind] = float(found.group(1)) if found else 0.0
        return totals["count"], totals["sum"]

    def start_floor(self, http_workers: int) -> tuple[str, Callable[[], float]]:
        """The framework-floor app under the gateway's HTTP server and settings: its URL and
        a function returning the CPU seconds its processes have used so far."""
        port = free_port()
        process = spawn(
            ["-m", "serving.gateway.api.http_server", "--app", "benchmarks.floor_app:app"],
            self.log_dir / "floor.log",
            {"GATEWAY_HTTP_PORT": str(port), "GATEWAY_HTTP_WORKERS": str(http_workers)},
        )
        self.processes.append(process)
        wait_until(accepts_connections(port), 60, "framework floor app")
        return f"http://127.0.0.1:{port}", lambda: tree_cpu_seconds(process.pid)

    def start_naive(self, version_dir: Path) -> str:
        """The naive Flask + model.predict server for ``version_dir``; returns its URL."""
        port = free_port()
        self.processes.append(spawn(
            ["-m", "benchmarks.naive_server", str(version_dir), str(port)], self.log_dir / f"naive_{port}.log"
        ))
        wait_until(accepts_connections(port), 120, "naive server")
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for process in self.processes:
            try:
                process.stop(timeout=30)
            except subprocess.TimeoutExpired:
                pass  # killed by stop()


def latest_version(models_dir: Path, name: str) -> Path:
    versions = version_dirs(models_dir / name)
    if not versions:
        raise SystemExit(f"no exported version under {models_dir / name}: run `make models` first")
    return versions[max(versions)]
