"""The edge (deploy/edge/start.sh, the script every deployment runs) as a child process on
free loopback ports, in front of a gateway that is already running."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.processes import ROOT, Process, accepts_connections, free_port, wait_until


@dataclass
class Edge:
    process: Process
    http_port: int
    https_port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


class EdgeRefusedToStart(Exception):
    def __init__(self, exit_code: int, output: str) -> None:
        super().__init__(f"the edge exited with {exit_code}: {output}")
        self.exit_code = exit_code
        self.output = output


def start_edge(upstream: str, prefix: Path, **settings: str) -> Edge:
    """The edge with ``EDGE_<NAME>`` settings, once it listens; EdgeRefusedToStart if it exits."""
    http_port, https_port = free_port(), free_port()
    env = {
        **os.environ,
        "EDGE_LISTEN": f"127.0.0.1:{http_port}",
        "EDGE_HTTPS_LISTEN": f"127.0.0.1:{https_port}",
        "EDGE_HTTPS_PORT": str(https_port),
        "EDGE_UPSTREAM": upstream,
        "EDGE_PREFIX": f"{prefix}/",
        **{f"EDGE_{name.upper()}": value for name, value in settings.items()},
    }
    prefix.mkdir(parents=True, exist_ok=True)
    log = prefix / "edge.log"
    with log.open("ab") as output:
        popen = subprocess.Popen(["sh", str(ROOT / "deploy" / "edge" / "start.sh")], env=env,
                                 stdout=output, stderr=subprocess.STDOUT)
    process = Process(popen, log)
    try:
        wait_until(lambda: popen.poll() is not None or accepts_connections(http_port)(), 10, f"the edge (log {log})")
    except TimeoutError:
        process.stop()
        raise
    if popen.poll() is not None:
        raise EdgeRefusedToStart(popen.returncode, log.read_text())
    return Edge(process, http_port, https_port)
