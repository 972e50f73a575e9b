"""What the nginx edge adds per request: the same requests through it and straight to gunicorn.

    python -m benchmarks.edge --models-dir models

Starts `make run`'s stack (deploy/local/run.sh: model server, gateway, nginx edge)
on free loopback ports and sends single-review predictions, one client at a time
and from 16 client threads, alternately to the edge and to gunicorn's own port, so
that both see the same machine state.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from harness.processes import ROOT, free_port, responds, wait_until

BODY = {"text": "A wonderful, moving film with a clever script and fine acting."}


def closed_loop(url: str, clients: int, duration: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker() -> None:
        session = requests.Session()
        local, failed = [], 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = session.post(url, json=BODY, timeout=10)
            if response.ok:
                local.append(time.perf_counter() - started)
            else:
                failed += 1
        with lock:
            latencies.extend(local)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of edge and gunicorn")
    args = parser.parse_args()

    ports = {name: free_port() for name in
             ("HTTP_PORT", "GATEWAY_HTTP_PORT", "GRPC_PORT", "MODEL_SERVER_PORT", "MODEL_SERVER_REST_PORT")}
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, **{name: str(port) for name, port in ports.items()},
               "MODELS_DIR": str(args.models_dir.resolve()), "RUN_DIR": run_dir, "PY": sys.executable}
        stack = subprocess.Popen(["bash", "deploy/local/run.sh"], cwd=ROOT, env=env, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = {
            "edge (nginx) -> gunicorn": f"http://127.0.0.1:{ports['HTTP_PORT']}/v1/sentiment",
            "gunicorn directly": f"http://127.0.0.1:{ports['GATEWAY_HTTP_PORT']}/v1/sentiment",
        }
        try:
            wait_until(responds(f"http://127.0.0.1:{ports['HTTP_PORT']}/readyz"), 120, "make run's stack")
            for url in targets.values():
                closed_loop(url, 4, 2)  # warm both paths
            results: dict[tuple[str, int], tuple[list[float], int]] = {}
            for _ in range(args.rounds):
                for clients in (1, 16):
                    for name, url in targets.items():
                        latencies, errors = closed_loop(url, clients, args.duration)
                        kept, failed = results.get((name, clients), ([], 0))
                        results[(name, clients)] = (kept + latencies, failed + errors)
        finally:
            os.killpg(stack.pid, signal.SIGTERM)
            stack.wait(30)

    seconds = args.duration * args.rounds
    print(f"{'path':<26} {'clients':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for (name, clients), (latencies, errors) in results.items():
        ms = np.asarray(latencies) * 1000
        print(f"{name:<26} {clients:>7} {len(ms) / seconds:>7.0f} {np.percentile(ms, 50):>7.1f} "
              f"{np.percentile(ms, 99):>7.1f} {errors:>6}")


if __name__ == "__main__":
    main()
