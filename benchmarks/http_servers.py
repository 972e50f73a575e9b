"""The HTTP server under the gateway, on evidence: granian's WSGI interface as the gateway
runs it (``serving.gateway.api.http_server``, 2 workers x 32 threads, and the same with 8
threads) against gunicorn gthread 2 x 32 (the server before, kept as the reference row),
serving the framework-floor app and the gateway.

    python -m benchmarks.http_servers --models-dir models

One model server is shared; for every round each server/app pair is started in turn
and loaded by `hey` with 64 clients sending the same single-review body, so that all
pairs see the same machine state. Prints requests/s, latency and the server's CPU per
request (server + workers). gunicorn is a development dependency for this reference only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import results
from benchmarks.__main__ import bench_hey
from benchmarks.arguments import benchmark_parser
from benchmarks.stack import GATEWAY_DEFAULTS, tree_cpu_seconds
from benchmarks.tables import count, ms, table
from harness.processes import (
    Process,
    accepts_connections,
    free_port,
    gateway_env,
    responds,
    spawn,
    start_model_server,
    wait_until,
)

WORKERS, CLIENTS = 2, 64
APPS = {"framework floor": "benchmarks.floor_app:app", "gateway": "serving.gateway.api.wsgi:app"}
# name -> threads per worker
SERVERS = {"granian 2 x 32 (shipped)": 32, "granian 2 x 8": 8, "gunicorn gthread 2 x 32 (before)": 32}


def server_command(server: str, app: str, port: int) -> list[str]:
    if server.startswith("gunicorn"):
        # The settings the gateway shipped with before (keep-alive 5 s, no control socket).
        return ["-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
                "--threads", str(SERVERS[server]), "--worker-class", "gthread", "--keep-alive", "5",
                "--no-control-socket", app]
    return ["-m", "serving.gateway.api.http_server", "--app", app]


def start(
    server: str, app: str, env: dict[str, str], log_dir: Path
) -> tuple[Process, str, Callable[[], float]]:
    port = free_port()
    env = {**env, "GATEWAY_HTTP_PORT": str(port), "GATEWAY_HTTP_WORKERS": str(WORKERS),
           "GATEWAY_HTTP_THREADS": str(SERVERS[server])}
    process = spawn(server_command(server, app, port), log_dir / f"server_{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_until(accepts_connections(port), 60, f"{app} under {server}")
    if app == APPS["gateway"]:
        wait_until(responds(f"{url}/readyz"), 60, "gateway readiness")
    return process, url, lambda: tree_cpu_seconds(process.pid)


def main() -> None:
    parser = benchmark_parser("benchmarks.http_servers", __doc__, "http-servers.json", duration=8.0)
    parser.add_argument("--rounds", type=int, default=2)
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
                for server in SERVERS:
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
                    print(f"round {round_number}  {app_name:<16} {server:<32} {row['requests_per_s']:7.0f} req/s"
                          f"  {row['cpu_ms_per_request']['server']:.3f} ms CPU/request  p50 {row['p50_ms']:.1f} ms"
                          f"  p99 {row['p99_ms']:.1f} ms  errors {row['errors']}", flush=True)
    finally:
        model_server.process.stop(timeout=30)
    results.save(args.out, rows)


def render(rows: list[dict]) -> str:
    """One line per app and server, one column per round: req/s, CPU ms per request, p99 ms."""
    rounds = sorted({r["round"] for r in rows})
    by_pair = {(r["scenario"], r["server"], r["round"]): r for r in rows}
    pairs = dict.fromkeys((r["scenario"], r["server"]) for r in rows)
    return table(
        ("app", "server", *(f"round {n}: req/s, CPU ms/request, p99 ms" for n in rounds)),
        ((app, server, *(f"{count(r['requests_per_s'])}, {r['cpu_ms_per_request']['server']:.2f}, {ms(r['p99_ms'])}"
                         for n in rounds for r in [by_pair[(app, server, n)]]))
         for app, server in pairs))


if __name__ == "__main__":
    main()
