"""What the front door costs per request: API keys and TLS, at 64 clients.

    python -m benchmarks.front_door --models-dir models

Starts the model server, and twice the gateway (2 HTTP workers, gRPC server) with the edge
(deploy/edge/start.sh) in front of its HTTP server: once open over plain HTTP and gRPC, once
as the Kubernetes manifests run it: an API key file of 10 lines, the access log, HTTPS at the
edge and TLS on the gRPC port (a throw-away CA). 64 clients send one median-length IMDB review per request: `hey` over HTTP(S), with
keep-alive and with a new connection (a full TLS handshake) per request; client threads of
this process over gRPC. The two set-ups alternate for ``--rounds`` rounds, and CPU per
request is read from /proc for the edge (nginx), the gateway and the model server.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from benchmarks import results as results_file
from benchmarks.__main__ import bench_grpc, bench_hey
from benchmarks.model_cost import median_text
from benchmarks.stack import GATEWAY_DEFAULTS, _cpu_seconds, tree_cpu_seconds
from benchmarks.tables import count, ms, table
from harness.certificates import Certificates, make_certificates
from harness.edge import Edge, start_edge
from harness.processes import (
    IMDB_TARBALL,
    Gateway,
    Listening,
    start_gateway,
    start_grpc_gateway,
    start_model_server,
    wait_until,
)
from serving.client import SentimentClient
from serving.gateway.access.api_keys import hash_line, new_key

CLIENTS = 64
UNLIMITED = {"rate_limit": "1000000", "rate_burst": "1000000",  # one address sends everything
             "max_connections_per_address": "65000"}  # nginx allows less than 65536
SIZING_ROW = "HTTP via the edge, API key"
# The HPA's target (deploy/kubernetes/base/autoscaling.yaml): 70% of the 0.75 CPU a
# gateway pod requests (deploy/kubernetes/base/gateway.yaml: HTTP 0.5 + gRPC 0.25)
SCALE_AT_CPU = 0.70 * 0.75


@dataclass
class FrontDoor:
    gateway: Gateway
    grpc_gateway: Listening
    edge: Edge


@contextmanager
def front_door(server_address: str, models_dir: Path, folder: Path, gateway_env: dict[str, str],
               edge_settings: dict[str, str], ca_file: Path | None = None) -> Iterator[FrontDoor]:
    folder.mkdir()
    with ExitStack() as started:
        gateway = start_gateway(server_address, models_dir, folder, **gateway_env)
        started.callback(gateway.process.stop)
        grpc_gateway = start_grpc_gateway(server_address, models_dir, gateway.metrics_dir, folder, ca_file,
                                          **gateway_env)
        started.callback(grpc_gateway.process.stop)
        edge = start_edge(gateway.target, folder / "edge", **UNLIMITED, **edge_settings)
        started.callback(edge.process.stop)
        wait_until(lambda: requests.get(f"{edge.http}/readyz", timeout=2).ok, 60, "gateway readiness")
        yield FrontDoor(gateway, grpc_gateway, edge)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.front_door", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--duration", type=float, default=8, help="seconds per row and round [8]")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two set-ups [2]")
    parser.add_argument("--out", type=Path, default=results_file.default_path("front_door.json"))
    args = parser.parse_args()

    from training.dataset import load_imdb

    body = {"text": median_text(load_imdb(args.data).test.texts), "model": "lstm"}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as started:
        scratch_dir = Path(scratch)
        models_dir = args.models_dir.resolve()
        server = start_model_server(models_dir, scratch_dir)
        started.callback(server.process.stop)
        certificates = make_certificates(scratch_dir / "tls")
        key = new_key()
        key_file = scratch_dir / "api-keys"
        # Ten keys in the file: a request's key is checked against every line.
        key_file.write_text("\n".join([hash_line("bench", key), *(hash_line(f"other-{n}", new_key()) for n in range(9))]))
        gateway_env = {**GATEWAY_DEFAULTS, "GATEWAY_HTTP_WORKERS": "2"}
        open_door = started.enter_context(front_door(server.address, models_dir, scratch_dir / "open", gateway_env, {}))
        guarded = started.enter_context(front_door(
            server.address, models_dir, scratch_dir / "guarded",
            {**gateway_env, "GATEWAY_API_KEYS_FILE": str(key_file), "GATEWAY_ACCESS_LOG": "true",
             "GATEWAY_GRPC_TLS_CERT": str(certificates.server_cert),
             "GATEWAY_GRPC_TLS_KEY": str(certificates.server_key)},
            {"tls_dir": str(certificates.server_dir)}, certificates.ca,
        ))
        scenarios = list(rows_of(open_door, guarded, certificates, key, body, server.process.pid))
        measured: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for name, run in scenarios:
                measured.setdefault(name, []).append(run(args.duration))
    rows = [averaged(name, runs) for name, runs in measured.items()]
    results = {"clients": CLIENTS, "duration_s": args.duration, "rounds": args.rounds, "rows": rows}
    print(f"{CLIENTS} clients, one median-length IMDB review per request, {args.rounds} x {args.duration:.0f} s "
          f"per row\n\n{render(results)}")
    results_file.save(args.out, results)


def rows_of(open_door: FrontDoor, guarded: FrontDoor, certificates: Certificates, key: str, body: dict,
            model_server_pid: int) -> Iterator[tuple[str, Callable[[float], dict]]]:
    """(scenario, run(duration) -> row) in the order they are measured within a round."""

    def cpu_of(door: FrontDoor, grpc: bool = False) -> Callable[[], dict[str, float]]:
        return lambda: {
            "edge": 0.0 if grpc else tree_cpu_seconds(door.edge.process.pid),
            "gateway": tree_cpu_seconds((door.grpc_gateway if grpc else door.gateway).process.pid),
            "model_server": _cpu_seconds([model_server_pid]),
        }

    auth = {"Authorization": f"Bearer {key}"}

    def http(door: FrontDoor, url: str, headers: dict | None, flags: tuple[str, ...] = ()) -> Callable[[float], dict]:
        return lambda duration: bench_hey(f"{url}/v1/sentiment", body, CLIENTS, duration, "", "lstm",
                                          cpu_of(door), headers, flags)

    def grpc(door: FrontDoor, client: SentimentClient) -> Callable[[float], dict]:
        return lambda duration: bench_grpc(lambda: client.predict([body["text"]], model="lstm"), CLIENTS, 1,
                                           duration, "lstm", cpu_of(door, grpc=True))

    yield "HTTP via the edge, open", http(open_door, open_door.edge.http, None)
    yield "HTTP via the edge, API key", http(guarded, guarded.edge.http, auth)
    yield "HTTPS via the edge, API key", http(guarded, guarded.edge.https, auth)
    yield "HTTPS via the edge, API key, new connection each", http(
        guarded, guarded.edge.https, auth, ("-disable-keepalive",))
    yield "gRPC, open", grpc(open_door, SentimentClient(open_door.grpc_gateway.target))
    yield "gRPC, TLS and API key", grpc(guarded, SentimentClient(
        guarded.grpc_gateway.target, api_key=key, ca_file=certificates.ca))


def averaged(name: str, runs: list[dict]) -> dict:
    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    return {
        "scenario": name,
        "requests_per_s": mean([run["requests_per_s"] for run in runs]),
        "p50_ms": mean([run["p50_ms"] for run in runs]),
        "p99_ms": mean([run["p99_ms"] for run in runs]),
        "errors": sum(run["errors"] for run in runs),
        "cpu_ms_per_request": {role: mean([run["cpu_ms_per_request"][role] for run in runs])
                               for role in ("edge", "gateway", "model_server")},
        "runs": runs,
    }


def render(results: dict) -> str:
    return table(
        ("path", "requests/s", "p50 ms", "p99 ms", "edge CPU ms/req", "gateway CPU ms/req", "model server CPU ms/req"),
        ((r["scenario"], count(r["requests_per_s"]), ms(r["p50_ms"]), ms(r["p99_ms"]),
          "-" if r["scenario"].startswith("gRPC") else f"{r['cpu_ms_per_request']['edge']:.2f}",
          f"{r['cpu_ms_per_request']['gateway']:.2f}", f"{r['cpu_ms_per_request']['model_server']:.2f}")
         for r in results["rows"]))


def render_sizing(results: dict) -> str:
    """Kubernetes sizing (docs/deployment.md) from the HTTP row with API keys on, as the manifests run."""
    cpu = next(r for r in results["rows"] if r["scenario"] == SIZING_ROW)["cpu_ms_per_request"]
    per_pod = int(SCALE_AT_CPU / cpu["gateway"] * 1000 // 10 * 10)
    examples = ", ".join(f"{count(n)} req/s -> {math.ceil(n / per_pod)}" for n in (1000, 3000))
    return (f"The gateway spends {cpu['gateway']:.2f} ms of CPU per single-review HTTP request at 64 clients "
            f"through the edge with API keys on ([the front door's row]"
            f"(benchmarks.md#the-front-door-api-keys-and-tls) \"{SIZING_ROW}\"); "
            f"the HPA adds pods above {SCALE_AT_CPU:.2f} CPU, i.e. about **{per_pod} requests/s per gateway pod**. "
            f"For N requests/s: `ceil(N / {per_pod})` gateway pods, e.g. {examples}. "
            f"The model server needs {cpu['model_server']:.2f} ms of CPU per such request (an upper bound for "
            f"TF Serving's C++ core), so N requests/s need about `N x {cpu['model_server']:.2f} ms` cores, "
            f"e.g. 1,000 req/s -> {cpu['model_server']:.1f} cores.")


if __name__ == "__main__":
    main()
