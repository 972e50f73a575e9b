"""The HTTP server under the gateway, on evidence: gunicorn (gthread) against granian's WSGI
interface, each with 2 workers x 32 threads, serving the framework-floor app and the gateway.

    python -m benchmarks.http_servers --models-dir models

One model server is shared; for every round each server/app pair is started in turn
and loaded by `hey` with 64 clients sending the same single-review body, so that all
pairs see the same machine state. Prints requests/s and the server's CPU per request
(master + workers). granian is a development dependency for this comparison only;
docs/benchmarks.md says why the gateway ships with gunicorn.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.__main__ import bench_hey
from benchmarks.stack import GATEWAY_DEFAULTS, tree_cpu_seconds
from harness.processes import (
    GUNICORN_CONF,
    IMDB_TARBALL,
    Process,
    accepts_connections,
    free_port,
    gateway_env,
    responds,
    spawn,
    start_model_server,
    wait_until,
)

WORKERS, THREADS, CLIENTS = 2, 32, 64
APPS = {"framework floor": "benchmarks.floor_app:app", "gateway": "serving.gateway.wsgi:app"}


def server_command(server: str, app: str, port: int) -> list[str]:
    if server == "gunicorn":
        return ["-m", "gunicorn", "-c", str(GUNICORN_CONF), app]
    return ["-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(WORKERS), "--blocking-threads", str(THREADS), "--no-ws",
            "--log-level", "warning", app]


def start(
    server: str, app: str, env: dict[str, str], log_dir: Path
) -> tuple[Process, str, Callable[[], float]]:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": str(WORKERS),
           "GUNICORN_THREADS": str(THREADS)}
    process = spawn(server_command(server, app, port), log_dir / f"{server}_{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_until(accepts_connections(port), 60, f"{app} under {server}")
    if app == APPS["gateway"]:
        wait_until(responds(f"{url}/readyz"), 60, "gateway readiness")
    return process, url, lambda: tree_cpu_seconds(process.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of load per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-http-servers.json"))
    args = parser.parse_args()

    from training.dataset import load_imdb

    text = load_imdb(args.data).test.sample(64, seed=3).texts[0]  # the review `make bench` sends
    log_dir = Path(tempfile.mkdtemp(prefix="bench-http-servers-"))
    models_dir = args.models_dir.resolve()
    model_server = start_model_server(models_dir, log_dir)
    rows = []
    try:
        for round_number in range(1, args.rounds + 1):
            for app_name, app in APPS.items():
                for server in ("gunicorn", "granian"):
                    metrics_dir = Path(tempfile.mkdtemp(dir=log_dir))
                    env = {**gateway_env(model_server.address, models_dir, metrics_dir), **GATEWAY_DEFAULTS}
                    process, url, cpu = start(server, app, env, log_dir)
                    try:
                        row = bench_hey(f"{url}/v1/sentiment", {"text": text, "model": "lstm"}, CLIENTS,
                                        args.duration, app_name, "lstm", lambda: {"server": cpu()})
                    finally:
                        process.stop(timeout=30)
                    row.update(server=server, round=round_number)
                    rows.append(row)
                    print(f"round {round_number}  {app_name:<16} {server:<9} {row['requests_per_s']:7.0f} req/s"
                          f"  {row['cpu_ms_per_request']['server']:.3f} ms CPU/request  p50 {row['p50_ms']:.1f} ms"
                          f"  errors {row['errors']}", flush=True)
    finally:
        model_server.process.stop(timeout=30)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
