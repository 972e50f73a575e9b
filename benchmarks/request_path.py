"""What the gateway's request path costs, beside the floors of two threading models.

    python -m benchmarks.request_path --models-dir models

Two model servers are started once: one as shipped, one with TensorFlow's thread pools
at a single thread each. Every round starts each HTTP tier in turn and loads it with
`hey` at 1 and at 64 clients, the same ~230-word review per request:

- the gateway as shipped (its plain-WSGI sentiment route, keys, metrics, access lines, versions,
  the coalescer; granian WSGI, 2 x 32 threads);
- the same gateway in front of the model server with single-thread TensorFlow pools;
- the minimal path on the same threads (``benchmarks.request_path_apps:wsgi_app``:
  tokenize, one blocking Predict call, JSON), and the same with the gateway's coalescer;
- the gateway's data plane alone, on the same threads without Flask
  (``data_plane_wsgi_app``): what the gateway's HTTP layer adds to it;
- the minimal path on one event loop per process with gRPC's asyncio client
  (``asgi_app`` on granian's ASGI interface, 2 workers): the asynchronous lever;
- the framework floor (``benchmarks.floor_app``: no model call at all).

For each: requests/s, p50/p99, and CPU per request of the HTTP tier's processes and of the
model server. The gap between the gateway and the minimal path with the coalescer is what its
features cost; the gap between the two minimal paths is what threads cost.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks import results
from benchmarks.__main__ import bench_hey
from benchmarks.arguments import benchmark_parser
from benchmarks.peers.__main__ import pick_review
from benchmarks.stack import GATEWAY_DEFAULTS, tree_cpu_seconds
from benchmarks.tables import count, ms, table
from harness.processes import (
    ModelServer,
    accepts_connections,
    free_port,
    gateway_env,
    responds,
    spawn,
    start_model_server,
    wait_until,
)

CLIENTS = (1, 64)
WORKERS = 2


@dataclass(frozen=True)
class Tier:
    name: str
    command: tuple[str, ...]  # python arguments; {port} is the port to listen on
    ready_path: str | None = None  # a path that answers once the tier can serve
    model_server: str = "shipped"  # a key of MODEL_SERVER_FLAGS


# TensorFlow's intra-op and inter-op pools default to a thread per core; one thread each
# halved a lone call's CPU (benchmarks.peers' TensorFlow cost): does it hold under batching?
MODEL_SERVER_FLAGS = {
    "shipped": (),
    "single-thread pools": ("--tensorflow_intra_op_parallelism", "1", "--tensorflow_inter_op_parallelism", "1"),
}
TIERS = (
    Tier("gateway (shipped)", ("-m", "serving.gateway.api.http_server"), "/readyz"),
    Tier("gateway, TensorFlow pools 1/1", ("-m", "serving.gateway.api.http_server"), "/readyz",
         "single-thread pools"),
    Tier("minimal path, threads", ("-m", "serving.gateway.api.http_server",
                                   "--app", "benchmarks.request_path_apps:wsgi_app")),
    Tier("minimal path + coalescer, threads", ("-m", "serving.gateway.api.http_server",
                                               "--app", "benchmarks.request_path_apps:coalesced_wsgi_app")),
    Tier("gateway's data plane without Flask", ("-m", "serving.gateway.api.http_server",
                                                 "--app", "benchmarks.request_path_apps:data_plane_wsgi_app")),
    Tier("minimal path, one event loop", ("-m", "granian", "--interface", "asgi", "--workers", str(WORKERS),
                                          "--host", "127.0.0.1", "--port", "{port}", "--no-access-log",
                                          "benchmarks.request_path_apps:asgi_app")),
    Tier("framework floor (no model call)", ("-m", "serving.gateway.api.http_server",
                                             "--app", "benchmarks.floor_app:app")),
)


def main() -> None:
    parser = benchmark_parser("benchmarks.request_path", __doc__, "request-path.json", duration=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    review = pick_review(args.data)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-request-path-"))
    models_dir = args.models_dir.resolve()
    model_servers = {name: start_model_server(models_dir, log_dir, flags=flags)
                     for name, flags in MODEL_SERVER_FLAGS.items()}
    rows = []
    try:
        for round_number in range(1, args.rounds + 1):
            for tier in TIERS:
                port = free_port()
                model_server = model_servers[tier.model_server]
                metrics_dir = Path(tempfile.mkdtemp(dir=log_dir))
                env = {**gateway_env(model_server.address, models_dir, metrics_dir), **GATEWAY_DEFAULTS,
                       "GATEWAY_HTTP_PORT": str(port), "GATEWAY_HTTP_WORKERS": str(WORKERS)}
                process = spawn([part.format(port=port) for part in tier.command],
                                log_dir / f"{port}.log", env)
                try:
                    wait_until(accepts_connections(port), 60, tier.name)
                    if tier.ready_path:
                        wait_until(responds(f"http://127.0.0.1:{port}{tier.ready_path}"), 60, f"{tier.name} readiness")

                    def cpu(model_server: ModelServer = model_server) -> dict[str, float]:
                        return {"http_tier": tree_cpu_seconds(process.pid),
                                "model_server": tree_cpu_seconds(model_server.process.pid)}

                    for clients in CLIENTS:
                        row = bench_hey(f"http://127.0.0.1:{port}/v1/sentiment", {"text": review, "model": "lstm"},
                                        clients, args.duration, tier.name, "lstm", cpu)
                        row["round"] = round_number
                        rows.append(row)
                        print(f"round {round_number}  {tier.name:<32} {clients:>2} clients "
                              f"{row['requests_per_s']:7.0f} req/s  p50 {row['p50_ms']:.1f} ms"
                              f"  CPU ms/request {row['cpu_ms_per_request']}  errors {row['errors']}", flush=True)
                finally:
                    process.stop(timeout=30)
    finally:
        for model_server in model_servers.values():
            model_server.process.stop(timeout=30)
    results.save(args.out, rows)


def render(rows: list[dict]) -> str:
    """One line per tier and load (each round's req/s, p50 and CPU ms per request), then
    what the gaps say, as medians over the rounds."""
    rounds = sorted({r["round"] for r in rows})
    by_key = {(r["scenario"], r["clients"], r["round"]): r for r in rows}
    keys = dict.fromkeys((r["scenario"], r["clients"]) for r in rows)
    lines = [table(
        ("HTTP tier", "clients",
         *(f"round {n}: req/s, p50 ms, CPU ms/request (tier / model server)" for n in rounds)),
        ((name, str(clients), *(
            f"{count(r['requests_per_s'])}, {ms(r['p50_ms'])}, "
            f"{r['cpu_ms_per_request']['http_tier']:.2f} / {r['cpu_ms_per_request']['model_server']:.2f}"
            for n in rounds for r in [by_key[(name, clients, n)]]))
         for name, clients in keys))]

    def median(name: str, clients: int, part: str) -> float:
        # The median: from three rounds on, one round caught in a slow spell of the machine does not move it.
        return statistics.median(by_key[(name, clients, n)]["cpu_ms_per_request"][part] for n in rounds)

    gateway, coalesced = TIERS[0].name, TIERS[3].name
    threads, one_loop, pools = TIERS[2].name, TIERS[5].name, TIERS[1].name
    lines.append("")
    for clients in CLIENTS:
        lines.append(
            f"* {clients} client(s), medians of the rounds: the gateway's features cost "
            f"{median(gateway, clients, 'http_tier') - median(coalesced, clients, 'http_tier'):.2f} ms of HTTP-tier "
            f"CPU per request over the minimal path with the same coalescer "
            f"({median(gateway, clients, 'http_tier'):.2f} vs {median(coalesced, clients, 'http_tier'):.2f}); "
            f"one event loop costs {median(one_loop, clients, 'http_tier'):.2f} ms where threads cost "
            f"{median(threads, clients, 'http_tier'):.2f}; TensorFlow pools of one thread each bring the model "
            f"server to {median(pools, clients, 'model_server'):.2f} ms from {median(gateway, clients, 'model_server'):.2f}.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
