"""`make run`'s stack, started by its own script (deploy/local/run.sh) on free loopback
ports: the model server, the gateway's HTTP and gRPC servers and the nginx edge."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.processes import ROOT, free_port, responds, wait_until


@dataclass
class LocalStack:
    process: subprocess.Popen
    edge_port: int
    gateway_port: int
    grpc_port: int
    run_dir: Path

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def pids_of(self, module: str) -> list[int]:
        """The stack's processes started as ``python -m <module>``."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (os.getpgid(int(entry.name)) == self.process.pid
                            and f"-m\0{module}\0".encode() in (entry / "cmdline").read_bytes()):
                        found.append(int(entry.name))
                except (OSError, ProcessLookupError):
                    continue
        return found

    @property
    def model_server_log(self) -> Path:
        return self.run_dir / "model_server.log"

    def http_server_pids(self) -> list[int]:
        """The gateway's HTTP server (serving.gateway.api.http_server) and its worker processes."""
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if (os.getpgid(int(entry.name)) == self.process.pid
                            and b"serving.gateway.api.http_server" in (entry / "cmdline").read_bytes()):
                        workers = subprocess.run(["pgrep", "-P", entry.name], capture_output=True, text=True)
                        return [int(entry.name), *map(int, workers.stdout.split())]
                except (OSError, ProcessLookupError):
                    continue
        raise AssertionError("the gateway's HTTP server is not running")

    def http_server_footprint(self) -> tuple[int, int]:
        """Open file descriptors and resident kB of the HTTP server and its workers."""
        fds = rss = 0
        for pid in self.http_server_pids():
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(status.split("VmRSS:")[1].split()[0])
        return fds, rss


@contextmanager
def local_stack(models_dir: Path, run_dir: Path, root: Path = ROOT, **settings: str) -> Iterator[LocalStack]:
    """The running stack, ready through the edge; stopped (SIGTERM to its process group) on exit.
    ``settings`` (``GATEWAY_*``, ``EDGE_*`` variables) reach every process of the stack; ``root``
    is the checkout whose code runs (another commit's worktree, for a before/after)."""
    ports = {name: free_port() for name in
             ("HTTP_PORT", "GATEWAY_HTTP_PORT", "GRPC_PORT", "MODEL_SERVER_PORT", "MODEL_SERVER_REST_PORT")}
    env = {**os.environ, **{name: str(port) for name, port in ports.items()},
           "MODELS_DIR": str(models_dir), "RUN_DIR": str(run_dir), "PY": sys.executable,
           # Tests and benchmarks send from one address faster than the edge's default
           # per-client rate; the limit itself is tested on an edge of its own.
           "EDGE_RATE_LIMIT": "1000000", "EDGE_RATE_BURST": "1000000", **settings}
    process = subprocess.Popen(["bash", "deploy/local/run.sh"], cwd=root, env=env, start_new_session=True,
                               stdout=(run_dir / "run.log").open("wb"), stderr=subprocess.STDOUT)
    stack = LocalStack(process, ports["HTTP_PORT"], ports["GATEWAY_HTTP_PORT"], ports["GRPC_PORT"], run_dir)
    try:
        wait_until(responds(f"{stack.edge}/readyz"), 120, f"make run's stack ({run_dir})")
        yield stack
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
