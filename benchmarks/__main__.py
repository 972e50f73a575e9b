"""Benchmark the serving path against the raw model and a naive server.

    python -m benchmarks --models-dir models --duration 8

Starts the model server (with the batching file of deploy/tfserving), the gateway
(HTTP server + gRPC server) and the naive Flask server itself, on loopback, and
prints one table per model. HTTP load comes from `hey`; gRPC load from a bounded
pool of Python client threads. Every figure comes from the same run.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import results as results_file
from benchmarks.arguments import benchmark_parser
from benchmarks.stack import Stack, latest_version
from benchmarks.tables import change, count, ms, table
from text_contract.layout import SERVED_MODELS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def summary(name, model, clients, texts_per_request, seconds, latencies, errors) -> dict:
    latencies = np.asarray(latencies) * 1000
    requests_done = len(latencies)
    return {
        "scenario": name, "model": model, "clients": clients, "texts_per_request": texts_per_request,
        "requests_per_s": requests_done / seconds, "reviews_per_s": requests_done * texts_per_request / seconds,
        "p50_ms": float(np.percentile(latencies, 50)) if requests_done else None,
        "p90_ms": float(np.percentile(latencies, 90)) if requests_done else None,
        "p99_ms": float(np.percentile(latencies, 99)) if requests_done else None,
        "errors": errors,
    }


def run_threads(call, clients: int, duration: float) -> tuple[list[float], int, float]:
    """Run ``call`` in a closed loop from ``clients`` threads for ``duration`` seconds."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def worker():
        local, failed = [], 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                call()
                local.append(time.perf_counter() - started)
            except Exception:
                failed += 1
        with lock:
            latencies.extend(local)
            errors[0] += failed

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0], time.monotonic() - started


def bench_raw(version_dir: Path, model: str, ids: np.ndarray, batch_sizes, duration) -> list[dict]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    rows = []
    for size in batch_sizes:
        batch = tf.constant(ids[:size])
        for _ in range(5):
            signature(tokens=batch)
        cpu_before = time.process_time()  # every thread of this process: TensorFlow's pools too
        latencies, errors, seconds = run_threads(lambda: signature(tokens=batch), 1, duration)
        row = summary(f"raw signature, batch {size}", model, 1, size, seconds, latencies, errors)
        rows_done = max(1, len(latencies) * size)
        row["cpu_ms_per_row"] = round((time.process_time() - cpu_before) * 1000 / rows_done, 3)
        rows.append(row)
    return rows


def parse_hey(output: str, texts_per_request: int, name: str, model: str, clients: int) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    percentile = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", output)}
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    errors = sum(n for c, n in codes.items() if c != 200)
    if "Error distribution:" in output:  # transport errors: "  [count]\tmessage"
        errors += sum(int(n) for n in re.findall(r"\[(\d+)\]\t", output.split("Error distribution:")[1]))
    return {
        "scenario": name, "model": model, "clients": clients, "texts_per_request": texts_per_request,
        "requests_per_s": rps, "reviews_per_s": rps * texts_per_request,
        "p50_ms": percentile.get(50), "p90_ms": percentile.get(90), "p99_ms": percentile.get(99),
        "errors": errors,
    }


# CPU seconds used so far by each service process of a scenario, by role.
CpuMeter = Callable[[], dict[str, float]]


def _used(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _cpu_per_request(before: dict[str, float], after: dict[str, float], load_generator: float,
                     requests_done: float) -> dict[str, float]:
    spent = {role: after[role] - before[role] for role in after}
    spent["load_generator"] = load_generator
    return {role: round(seconds * 1000 / requests_done, 3) for role, seconds in spent.items()}


def bench_hey(
    url: str, body: dict, clients: int, duration: float, name: str, model: str, cpu: CpuMeter | None = None,
    headers: dict[str, str] | None = None, hey_flags: tuple[str, ...] = (),
) -> dict:
    """One `hey` run; with ``cpu``, also the CPU each process spent per request (where the time goes)."""
    hey = shutil.which("hey")
    if hey is None:
        raise SystemExit("hey is not installed: apt-get install hey (or `make bench`)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
    extra = [argument for name, value in (headers or {}).items() for argument in ("-H", f"{name}: {value}")]
    command = [hey, "-c", str(clients), "-m", "POST", "-T", "application/json", "-D", handle.name, *extra,
               *hey_flags, url]
    subprocess.run([command[0], "-z", "2s", *command[1:]], capture_output=True, text=True)  # warm-up
    services_before = cpu() if cpu else {}
    hey_before = _used(resource.getrusage(resource.RUSAGE_CHILDREN))
    output = subprocess.run([command[0], "-z", f"{duration}s", *command[1:]], capture_output=True, text=True).stdout
    hey_spent = _used(resource.getrusage(resource.RUSAGE_CHILDREN)) - hey_before
    texts = len(body.get("texts", [])) or 1
    row = parse_hey(output, texts, name, model, clients)
    if cpu:
        row["cpu_ms_per_request"] = _cpu_per_request(
            services_before, cpu(), hey_spent, row["requests_per_s"] * duration)
    return row


def bench_grpc(call, clients: int, texts: int, duration: float, model: str, cpu: CpuMeter,
               name: str = "gateway gRPC") -> dict:
    """A closed loop of gateway gRPC calls from client threads of this process (the load generator)."""
    services_before = cpu()
    self_before = _used(resource.getrusage(resource.RUSAGE_SELF))
    latencies, errors, seconds = run_threads(call, clients, duration)
    self_spent = _used(resource.getrusage(resource.RUSAGE_SELF)) - self_before
    row = summary(name, model, clients, texts, seconds, latencies, errors)
    row["cpu_ms_per_request"] = _cpu_per_request(services_before, cpu(), self_spent, max(1, len(latencies)))
    return row


def batched(stack: Stack, model_name: str, run: Callable[[], dict]) -> dict:
    """``run``'s row with the mean rows per batch the model server ran meanwhile: what its
    CPU per request depends on most (docs/benchmarks.md)."""
    batches_before, rows_before = stack.batches(model_name)
    row = run()
    batches_after, rows_after = stack.batches(model_name)
    row["rows_per_batch"] = round((rows_after - rows_before) / max(1, batches_after - batches_before), 1)
    return row


def main() -> None:
    parser = benchmark_parser("benchmarks", __doc__, "serving-path.json", duration=8.0)
    parser.add_argument("--http-workers", type=int, default=2)
    args = parser.parse_args()
    models_dir = args.models_dir.resolve()

    import grpc
    from sentiment.openinference import open_inference_grpc_pb2 as pb
    from sentiment.openinference.open_inference_grpc_pb2_grpc import GRPCInferenceServiceStub

    from serving.client import SentimentClient
    from serving.gateway.routing.model_client import ModelServerClient
    from text_contract.tokenizer import Tokenizer, TokenizerContract
    from training.dataset import load_imdb

    texts = load_imdb(args.data).test.sample(512, seed=3).texts
    rows: list[dict] = []
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(models_dir, log_dir, args.http_workers)

    def http_cpu() -> dict[str, float]:
        used = stack.cpu_seconds()
        return {"model_server": used["model_server"], "gateway": used["gateway"]}

    def grpc_cpu() -> dict[str, float]:
        used = stack.cpu_seconds()
        return {"model_server": used["model_server"], "gateway": used["grpc_gateway"]}

    try:
        print("== framework floor: Flask parsing the body, same HTTP server settings, 64 clients", flush=True)
        floor_url, floor_cpu = stack.start_floor(args.http_workers)
        floor = bench_hey(f"{floor_url}/v1/sentiment", {"text": texts[0]}, 64, args.duration,
                          "framework floor", "-", lambda: {"gateway": floor_cpu()})
        for model, name in SERVED_MODELS.items():
            version_dir = latest_version(models_dir, name)
            ids, _ = Tokenizer(TokenizerContract.read(version_dir)).encode_batch(texts)
            print(f"== {model}: raw signature", flush=True)
            rows += bench_raw(version_dir, model, ids, (1, 8, 32, 64, 256), args.duration)

            print(f"== {model}: model server over gRPC", flush=True)
            client = ModelServerClient(stack.model_server.address, 10)
            version = int(version_dir.name)
            for clients, size in ((1, 1), (64, 1), (4, 64)):
                latencies, errors, seconds = run_threads(
                    lambda: client.predict(name, version, ids[:size]), clients, args.duration)
                rows.append(summary("model server gRPC", model, clients, size, seconds, latencies, errors))

            url = f"{stack.http_url}/v1/sentiment"
            for clients in (1, 8, 64):
                print(f"== {model}: gateway HTTP, 1 text, {clients} clients", flush=True)
                rows.append(batched(stack, name, lambda: bench_hey(
                    url, {"text": texts[0], "model": model}, clients, args.duration, "gateway HTTP", model,
                    http_cpu)))
            print(f"== {model}: gateway HTTP, 32 texts", flush=True)
            rows.append(batched(stack, name, lambda: bench_hey(
                url, {"texts": texts[:32], "model": model}, 4, args.duration, "gateway HTTP", model,
                http_cpu)))

            print(f"== {model}: gateway gRPC", flush=True)
            with SentimentClient(stack.grpc_target) as sentiment:
                for clients, size in ((1, 1), (64, 1), (4, 32)):
                    rows.append(batched(stack, name, lambda: bench_grpc(
                        lambda: sentiment.predict(texts[:size], model=model),
                        clients, size, args.duration, model, grpc_cpu)))

            print(f"== {model}: Open Inference Protocol (V2), 1 text, 64 clients", flush=True)
            v2_body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [texts[0]]}]}
            rows.append(batched(stack, name, lambda: bench_hey(
                f"{stack.http_url}/v2/models/{model}/infer", v2_body, 64, args.duration, "V2 HTTP", model,
                http_cpu)))
            with grpc.insecure_channel(stack.grpc_target) as channel:
                infer = GRPCInferenceServiceStub(channel).ModelInfer
                request = pb.ModelInferRequest(model_name=model, inputs=[pb.ModelInferRequest.InferInputTensor(
                    name="text", datatype="BYTES", shape=[1],
                    contents=pb.InferTensorContents(bytes_contents=[texts[0].encode()]))])
                rows.append(batched(stack, name, lambda: bench_grpc(
                    lambda: infer(request, timeout=30), 64, 1, args.duration, model, grpc_cpu, name="V2 gRPC")))

            print(f"== {model}: naive Flask + model.predict", flush=True)
            naive = stack.start_naive(version_dir)
            rows.append(bench_hey(f"{naive}/predict", {"text": texts[0]}, 16,
                                  args.duration, "naive Flask + model.predict", model))
    finally:
        stack.stop()

    for model in SERVED_MODELS:
        raw64 = next(r["reviews_per_s"] for r in rows if r["model"] == model and r["scenario"] == "raw signature, batch 64")
        for row in rows:
            if row["model"] == model:
                row["x_raw_batch64"] = row["reviews_per_s"] / raw64
    results_file.save(args.out, {"duration_s": args.duration, "framework_floor": floor, "rows": rows})
    print(render(rows))
    print(headline(rows, floor))
    print(f"\nwritten to {args.out} (service logs in {log_dir})")


def headline(rows: list[dict], floor: dict) -> str:
    """The gateway's own CPU per single-review request at 64 clients, beside the framework floor."""
    lines = [f"\nframework floor (Flask parsing the body, same HTTP server settings, 64 clients): "
             f"{floor['cpu_ms_per_request']['gateway']:.2f} ms CPU per request, "
             f"{floor['requests_per_s']:.0f} req/s"]
    for model in SERVED_MODELS:
        cost = {
            row["scenario"]: row["cpu_ms_per_request"]["gateway"] for row in rows
            if row["model"] == model and row["clients"] == 64 and row["texts_per_request"] == 1
            and (row["scenario"].startswith("gateway") or row["scenario"].startswith("V2"))
        }
        lines.append(f"{model}: gateway CPU per single-review request at 64 clients: "
                     f"HTTP {cost['gateway HTTP']:.2f} ms, gRPC {cost['gateway gRPC']:.2f} ms; "
                     f"Open Inference Protocol HTTP {cost['V2 HTTP']:.2f} ms "
                     f"({cost['V2 HTTP'] / cost['gateway HTTP'] - 1:+.0%}), "
                     f"gRPC {cost['V2 gRPC']:.2f} ms ({cost['V2 gRPC'] / cost['gateway gRPC'] - 1:+.0%})")
    return "\n".join(lines)


def render(rows: list[dict]) -> str:
    """Every row of a run, as `python -m benchmarks` prints it."""
    def tenth(value):
        return "-" if value is None else f"{value:.1f}"

    lines = ["| model | scenario | clients | texts/req | req/s | reviews/s | p50 ms | p90 ms | p99 ms | errors "
             "| x raw b64 | CPU ms/req: model server, gateway, hey | rows per model-server batch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['scenario']} | {r['clients']} | {r['texts_per_request']} | {r['requests_per_s']:.0f} "
            f"| {r['reviews_per_s']:.0f} | {tenth(r['p50_ms'])} | {tenth(r['p90_ms'])} | {tenth(r['p99_ms'])} "
            f"| {r['errors']} | {r['x_raw_batch64']:.2f} | {_cpu_cell(r)} | {r.get('rows_per_batch', '-')} |"
        )
    return "\n".join(lines)


# (scenario, clients, texts per request) of the serving-path table in docs/benchmarks.md
PAGE_ROWS = (
    ("raw signature, batch 1", 1, 1), ("raw signature, batch 64", 1, 64), ("model server gRPC", 64, 1),
    ("gateway HTTP", 1, 1), ("gateway HTTP", 64, 1), ("gateway HTTP", 4, 32),
    ("gateway gRPC", 1, 1), ("gateway gRPC", 64, 1), ("naive Flask + model.predict", 16, 1),
)


def _row(rows: list[dict], model: str, scenario: str, clients: int = 64, texts: int = 1) -> dict:
    return next(r for r in rows if r["model"] == model and r["scenario"] == scenario
                and r["clients"] == clients and r["texts_per_request"] == texts)


def _cpu_cell(row: dict) -> str:
    if "cpu_ms_per_row" in row:
        return f"{row['cpu_ms_per_row']:.2f} per row"
    split = row.get("cpu_ms_per_request")
    return "-" if not split else " / ".join(f"{split[k]:.2f}" for k in ("model_server", "gateway", "load_generator"))


def render_serving_path(results: dict) -> str:
    """The LSTM's rows of docs/benchmarks.md's serving-path table, then SimpleRNN and the floor."""
    rows = results["rows"]
    lines = table(
        ("scenario", "clients", "texts/request", "req/s", "reviews/s", "p50 ms", "p99 ms",
         "CPU ms per request: model server / gateway / load generator", "rows per model-server batch"),
        ((scenario, clients, texts, count(r["requests_per_s"]), count(r["reviews_per_s"]), ms(r["p50_ms"]),
          ms(r["p99_ms"]), _cpu_cell(r), r.get("rows_per_batch", "-"))
         for scenario, clients, texts in PAGE_ROWS
         for r in [_row(rows, "lstm", scenario, clients, texts)]))
    http, grpc = _row(rows, "simple_rnn", "gateway HTTP"), _row(rows, "simple_rnn", "gateway gRPC")
    floor = results["framework_floor"]
    return (f"{lines}\n\nSimpleRNN in the same run: gateway HTTP at 64 clients {count(http['requests_per_s'])} req/s "
            f"(gateway {http['cpu_ms_per_request']['gateway']:.2f} ms of CPU per request, model server "
            f"{http['cpu_ms_per_request']['model_server']:.2f} ms), gRPC {count(grpc['requests_per_s'])} req/s. "
            f"The framework floor (a Flask app that only parses the body, under the same HTTP server settings, "
            f"64 clients): {floor['cpu_ms_per_request']['gateway']:.2f} ms of CPU per request, "
            f"{count(floor['requests_per_s'])} req/s.")


def render_open_inference(results: dict) -> str:
    """sentiment.v1 beside V2 (Open Inference Protocol), single text, 64 clients: req/s and gateway CPU."""
    rows, cells, ratios = results["rows"], [], {"HTTP": [], "gRPC": []}
    for model in SERVED_MODELS:
        line = [model]
        for transport in ("HTTP", "gRPC"):
            v1, v2 = _row(rows, model, f"gateway {transport}"), _row(rows, model, f"V2 {transport}")
            v1_ms, v2_ms = v1["cpu_ms_per_request"]["gateway"], v2["cpu_ms_per_request"]["gateway"]
            ratios[transport].append(v2_ms / v1_ms)
            line += [f"{count(v1['requests_per_s'])} req/s, {v1_ms:.2f} ms",
                     f"{count(v2['requests_per_s'])} req/s, {v2_ms:.2f} ms ({change(v2_ms, v1_ms)})"]
        cells.append(line)
    averaged = {transport: sum(values) / len(values) for transport, values in ratios.items()}
    return (table(("model", "sentiment.v1 HTTP", "V2 HTTP", "sentiment.v1 gRPC", "V2 gRPC"), cells)
            + f"\n\nAveraged over the models, V2 costs the gateway {change(averaged['HTTP'], 1)} of CPU per request "
            f"against sentiment.v1 on HTTP and {change(averaged['gRPC'], 1)} on gRPC.")


if __name__ == "__main__":
    main()
