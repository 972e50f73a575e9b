"""The batching file's ``batch_timeout_micros`` on evidence: 1-client latency against
throughput and CPU under load, for each timeout, one run.

    python -m benchmarks.batch_timeout --models-dir models

For each timeout the model server starts with deploy/tfserving/batching_parameters.txt
changed only in that value, the gateway (HTTP) in front of it, and `hey` sends LSTM
predictions: one rt-polarity-length snippet, one median-length IMDB review (1 and 64
clients), and 32 reviews per request (1 and 16 clients).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from benchmarks import results as results_file
from benchmarks.__main__ import bench_hey
from benchmarks.stack import GATEWAY_DEFAULTS, _cpu_seconds, tree_cpu_seconds
from benchmarks.tables import count, ms, table
from harness.processes import (
    BATCHING_FILE,
    IMDB_TARBALL,
    responds,
    start_gateway,
    start_model_server,
    wait_until,
)

SNIPPET = ("the film provides some great insight into the neurotic mindset of all comics -- "
           "even those who have reached the absolute top of the game .")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_timeout", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--timeouts", type=int, nargs="+", default=[2000, 500, 0], help="microseconds")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of load per row")
    parser.add_argument("--out", type=Path, default=results_file.default_path("batch-timeout.json"))
    args = parser.parse_args()

    from training.dataset import load_imdb

    test = load_imdb(args.data).test
    review = test.sample(64, seed=3).texts[0]  # the review `make bench` sends
    bodies = {
        "snippet": ({"text": SNIPPET, "model": "lstm"}, (1, 64)),
        "review": ({"text": review, "model": "lstm"}, (1, 64)),
        "32 reviews": ({"texts": test.sample(32, seed=5).texts, "model": "lstm"}, (1, 16)),
    }
    models_dir = args.models_dir.resolve()
    rows = []
    for timeout in args.timeouts:
        log_dir = Path(tempfile.mkdtemp(prefix="bench-batch-timeout-"))
        batching = log_dir / "batching_parameters.txt"
        batching.write_text(re.sub(r"batch_timeout_micros \{ value: \d+ \}",
                                   f"batch_timeout_micros {{ value: {timeout} }}", BATCHING_FILE.read_text()))
        server = start_model_server(models_dir, log_dir, batching_file=batching)
        gateway = start_gateway(server.address, models_dir, log_dir, **GATEWAY_DEFAULTS)
        try:
            wait_until(responds(f"{gateway.url}/readyz"), 60, "gateway readiness")

            def cpu() -> dict[str, float]:
                return {"model_server": _cpu_seconds([server.process.pid]),
                        "gateway": tree_cpu_seconds(gateway.process.pid)}

            for name, (body, client_counts) in bodies.items():
                for clients in client_counts:
                    row = bench_hey(f"{gateway.url}/v1/sentiment", body, clients, args.duration, name, "lstm", cpu)
                    row["timeout_us"] = timeout
                    rows.append(row)
                    spent = row["cpu_ms_per_request"]
                    print(f"timeout {timeout:>5} us  {name:<10} {clients:>2} clients: {row['requests_per_s']:6.0f} req/s"
                          f"  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  CPU ms/request: model server "
                          f"{spent['model_server']:.2f}, gateway {spent['gateway']:.2f}", flush=True)
        finally:
            gateway.process.stop()
            server.process.stop()
    results_file.save(args.out, {"duration_s": args.duration, "rows": rows})


def shipped_timeout() -> int:
    """``batch_timeout_micros`` in the batching file the model server ships with."""
    return int(re.search(r"batch_timeout_micros \{ value: (\d+) \}", BATCHING_FILE.read_text())[1])


def render(results: dict) -> str:
    """Per timeout: 1-client p50 of a snippet and a review, and throughput under load."""
    keyed = {(r["timeout_us"], r["scenario"], r["clients"]): r for r in results["rows"]}
    shipped = shipped_timeout()

    def timeout_cell(timeout: int) -> str:
        return f"**{timeout:,} µs (shipped)**" if timeout == shipped else f"{timeout:,} µs"

    return table(
        ("`batch_timeout_micros`", "snippet, 1 client p50 ms", "review, 1 client p50 ms", "review, 64 clients req/s",
         "32 reviews/request, 16 clients req/s"),
        ((timeout_cell(timeout), ms(keyed[(timeout, "snippet", 1)]["p50_ms"]), ms(keyed[(timeout, "review", 1)]["p50_ms"]),
          count(keyed[(timeout, "review", 64)]["requests_per_s"]), count(keyed[(timeout, "32 reviews", 16)]["requests_per_s"]))
         for timeout in dict.fromkeys(r["timeout_us"] for r in results["rows"])))


if __name__ == "__main__":
    main()
