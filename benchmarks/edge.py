"""What the nginx edge costs and what it protects from: the same requests through it and
straight to the gateway's HTTP server, without and with slow clients.

    python -m benchmarks.edge --models-dir models

Starts `make run`'s stack (deploy/local/run.sh: model server, gateway, nginx edge)
on free loopback ports and sends single-review predictions, one client at a time
and from 16 client threads, alternately to the edge and to the gateway's own port, so
that both see the same machine state. Then, for each path, 300 slowloris-style
connections trickle request bodies while one normal client measures what is left of
the service (the gateway must sit behind a buffering proxy: this is why).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from benchmarks import results as results_file
from benchmarks.tables import count, ms, table
from harness.local_stack import local_stack
from harness.processes import wait_until
from harness.slow_clients import NormalClient, SlowClients

SLOW_CONNECTIONS = 300
TRICKLE_SECONDS = 3  # one body byte per interval: longer than the edge's body timeout
# From 10 loopback addresses (30 each): from one, the edge would refuse all but its
# per-address share of requests in progress at once (EDGE_MAX_CONNECTIONS_PER_ADDRESS).
SLOW_SOURCES = tuple(f"127.0.0.{10 + index}" for index in range(10))

BODY = {"text": "A wonderful, moving film with a clever script and fine acting."}


def predict_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1/sentiment"


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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.edge", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--duration", type=float, default=8, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two paths")
    parser.add_argument("--out", type=Path, default=results_file.default_path("edge.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as run_dir, local_stack(args.models_dir.resolve(), Path(run_dir)) as stack:
        targets = {"edge (nginx) -> gateway": stack.edge_port, "gateway directly": stack.gateway_port}
        for port in targets.values():
            closed_loop(predict_url(port), 4, 2)  # warm both paths
        measured: dict[tuple[str, int], tuple[list[float], int]] = {}
        for _ in range(args.rounds):
            for clients in (1, 16):
                for name, port in targets.items():
                    latencies, errors = closed_loop(predict_url(port), clients, args.duration)
                    kept, failed = measured.get((name, clients), ([], 0))
                    measured[(name, clients)] = (kept + latencies, failed + errors)
        under_slow_clients = {name: beside_slow_clients(port, args.duration) for name, port in targets.items()}

    seconds = args.duration * args.rounds
    results = {
        "duration_s": args.duration, "rounds": args.rounds, "slow_connections": SLOW_CONNECTIONS,
        "trickle_seconds": TRICKLE_SECONDS,
        "paths": [path_row(name, clients, latencies, errors, seconds)
                  for (name, clients), (latencies, errors) in measured.items()],
        "beside_slow_clients": [slow_row(name, normal, slow) for name, (normal, slow) in under_slow_clients.items()],
    }
    print(render(results))
    results_file.save(args.out, results)


def path_row(path: str, clients: int, latencies: list[float], errors: int, seconds: float) -> dict:
    ms = np.asarray(latencies) * 1000
    return {"path": path, "clients": clients, "requests_per_s": len(ms) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "errors": errors}


def slow_row(path: str, normal: NormalClient, slow: SlowClients) -> dict:
    return {"path": path, "normal_requests": len(normal.statuses), "normal_succeeded": normal.success_rate,
            "normal_p99_ms": normal.p99 * 1000,
            "slow_closed_after_s": [min(slow.closed_after), max(slow.closed_after)] if slow.closed_after else None,
            "slow_still_open": slow.still_open}


def render(results: dict) -> str:
    """Per path: 1 and 16 clients, then what a normal client gets beside slow connections."""
    keyed = {(r["path"], r["clients"]): r for r in results["paths"]}

    def load(path: str, clients: int) -> str:
        r = keyed[(path, clients)]
        return f"{count(r['requests_per_s'])}, {ms(r['p50_ms'])} ms, {ms(r['p99_ms'])} ms"

    def beside(r: dict) -> str:
        closed = (f"slow connections closed after {r['slow_closed_after_s'][0]:.1f}-{r['slow_closed_after_s'][1]:.1f} s"
                  if r["slow_closed_after_s"] else "no slow connection closed")
        if r["slow_still_open"]:
            closed += f", {r['slow_still_open']} still open at the end"
        return (f"**{r['normal_succeeded']:.0%}** of {r['normal_requests']} succeeded, p99 {count(r['normal_p99_ms'])} ms; "
                f"{closed}")

    return table(
        ("path", "1 client: req/s, p50, p99", "16 clients: req/s, p50, p99",
         f"a normal client beside {results['slow_connections']} slow connections"),
        ((r["path"], load(r["path"], 1), load(r["path"], 16), beside(r)) for r in results["beside_slow_clients"]))


def beside_slow_clients(port: int, duration: float) -> tuple[NormalClient, SlowClients]:
    """One normal client while slow connections trickle request bodies into ``port``."""
    with SlowClients("127.0.0.1", port, SLOW_CONNECTIONS, TRICKLE_SECONDS, sources=SLOW_SOURCES) as slow:
        wait_until(lambda: len(slow.sockets) == SLOW_CONNECTIONS, 10, "the slow connections")
        normal = NormalClient(predict_url(port), duration=duration).run()
        deadline = time.monotonic() + 30
        while slow.still_open and time.monotonic() < deadline:  # the server may never close them
            time.sleep(0.5)
    return normal, slow


if __name__ == "__main__":
    main()
