"""What the gateway's optional features cost the users: latency and CPU per request with no
rollout, a 10% canary, 100% shadow traffic, the prediction log sampling every text, and API keys.

    python -m benchmarks.features --models-dir models

Serves two versions of the LSTM (``harness.two_versions``) from the model server and loads
the gateway (2 HTTP workers) with `hey`, 64 clients sending one median-length IMDB review,
for each rollout in turn; the gateway follows its rollout file without a restart. The
prediction-log and API-key rows restart the gateway with the feature on.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import results as results_file
from benchmarks.__main__ import bench_hey
from benchmarks.model_cost import median_text
from benchmarks.stack import GATEWAY_DEFAULTS, _cpu_seconds, latest_version, tree_cpu_seconds
from benchmarks.tables import count, ms, table
from harness.processes import IMDB_TARBALL, Gateway, start_gateway, start_model_server, wait_until
from harness.two_versions import MODEL_NAME, serve_two_versions
from serving.gateway.access.api_keys import hash_line, new_key
from serving.gateway.settings import Settings

CLIENTS = 64
ROLLOUTS = {
    "no rollout": "{}",
    "canary 10%": "lstm: {stable: 1, candidate: 2, canary_percent: 10}",
    "shadow 100%": "lstm: {stable: 1, candidate: 2, shadow_percent: 100}",
}


def follow(gateway: Gateway, rollout_file: Path, document: str) -> None:
    """Write the rollout and wait until both workers route by it (each looks once a second)."""
    rollout_file.write_text(document, encoding="utf-8")
    time.sleep(1.2)
    for _ in range(20):
        requests.post(f"{gateway.url}/v1/sentiment", json={"text": "a film"}, timeout=10).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.features", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--duration", type=float, default=10, help="seconds per row [10]")
    parser.add_argument("--out", type=Path, default=results_file.default_path("features.json"))
    args = parser.parse_args()

    from training.dataset import load_imdb

    review = median_text(load_imdb(args.data).test.texts)
    body = {"text": review, "model": "lstm"}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        served = scratch_dir / "served"
        config = serve_two_versions(latest_version(args.models_dir.resolve(), MODEL_NAME), served)
        server = start_model_server(served, scratch_dir, config=config, wait_for=[MODEL_NAME])
        rollout_file = scratch_dir / "rollouts.yaml"
        rollout_file.write_text("{}", encoding="utf-8")
        common = {**GATEWAY_DEFAULTS, "GATEWAY_HTTP_WORKERS": "2", "GATEWAY_MODELS": "lstm=imdb_lstm",
                  "GATEWAY_ROLLOUTS_FILE": str(rollout_file)}

        def run(gateway: Gateway, name: str, headers: dict[str, str] | None = None) -> dict:
            def cpu() -> dict[str, float]:
                return {"gateway": tree_cpu_seconds(gateway.process.pid),
                        "model_server": _cpu_seconds([server.process.pid])}

            row = bench_hey(f"{gateway.url}/v1/sentiment", body, CLIENTS, args.duration, name, "lstm", cpu, headers)
            row.update(shadow_copies(requests.get(f"{gateway.url}/metrics", timeout=10).text))
            return row

        try:
            gateway = start_gateway(server.address, served, scratch_dir, **common)
            try:
                wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=2).ok, 60, "gateway readiness")
                for name, document in ROLLOUTS.items():
                    follow(gateway, rollout_file, document)
                    rows.append(run(gateway, name))
            finally:
                gateway.process.stop()
            rollout_file.write_text("{}", encoding="utf-8")  # the feature rows run without a rollout
            key = new_key()
            key_file = scratch_dir / "api-keys"
            # Ten keys in the file: a request's key is checked against every line.
            key_file.write_text("\n".join([hash_line("bench", key), *(hash_line(f"other-{n}", new_key()) for n in range(9))]))
            features = {
                "prediction log 100%": ({"GATEWAY_PREDICTION_LOG_DIR": str(scratch_dir / "predictions"),
                                         "GATEWAY_PREDICTION_LOG_SAMPLE_RATE": "1",
                                         "GATEWAY_PREDICTION_LOG_SALT": "benchmark-salt-0123"}, None),
                "API keys (10 in the file)": ({"GATEWAY_API_KEYS_FILE": str(key_file)},
                                              {"Authorization": f"Bearer {key}"}),
            }
            for name, (environment, headers) in features.items():
                featured = start_gateway(server.address, served, scratch_dir, **common, **environment)
                try:
                    wait_until(lambda: requests.get(f"{featured.url}/readyz", timeout=2).ok, 60, "gateway readiness")
                    rows.append(run(featured, name, headers))
                finally:
                    featured.process.stop()
        finally:
            server.process.stop()

    results = {"clients": CLIENTS, "duration_s": args.duration, "rows": rows}
    print(f"{CLIENTS} clients, one median-length IMDB review per request, {args.duration:.0f} s per row\n")
    print(render(results))
    results_file.save(args.out, results)


def shadow_copies(metrics: str) -> dict[str, float]:
    """The shadow copies the gateway made since it started: all of them, and those dropped."""
    counts = {line.split('outcome="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
              for line in metrics.splitlines() if line.startswith("sentiment_shadow_requests_total{")}
    return {"shadow_copies": sum(counts.values()), "shadow_dropped": counts.get("dropped", 0.0)}


def render(results: dict) -> str:
    """The features table, then what happened to the shadow copies."""
    rows = results["rows"]
    lines = table(
        ("feature", "req/s", "p99 ms", "gateway CPU ms/request", "model server CPU ms/request"),
        ((r["scenario"], count(r["requests_per_s"]), ms(r["p99_ms"]), f"{r['cpu_ms_per_request']['gateway']:.2f}",
          f"{r['cpu_ms_per_request']['model_server']:.2f}") for r in rows))
    shadow = next(r for r in rows if r["scenario"] == "shadow 100%")
    copies = f" of {count(shadow['shadow_copies'])}" if "shadow_copies" in shadow else ""
    return (f"{lines}\n\nWith 100% shadow traffic the gateway dropped {count(shadow['shadow_dropped'])}{copies} "
            f"shadow copies, warm-up requests included (all {Settings().shadow_max_in_flight} slots of a "
            f"process busy).")

if __name__ == "__main__":
    main()
