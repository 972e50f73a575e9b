"""Time to AVAILABLE and first-request latency after a rollout, by export and warmup file.

    python -m benchmarks.warmup --models-dir models --rounds 3

Starts the model server (XLA enabled, as deployed) on a scratch model folder, then
publishes new versions of the LSTM one after another: the shipped export (trimmed,
compiled by XLA) and the plain export of the same weights (all 500 steps, no XLA),
each with and without ``assets.extra/tf_serving_warmup_requests``. For each version
it measures the time from its folder appearing to AVAILABLE and, as soon as it is
AVAILABLE, times one single-review Predict pinned to it (the first request a user
would send after the rollout), then a second one for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import results as results_file
from benchmarks.model_cost import write_export
from benchmarks.stack import latest_version
from benchmarks.tables import ms, table
from harness.processes import start_model_server
from text_contract.layout import SERVED_MODELS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = SERVED_MODELS["lstm"]


def available(rest_url: str, version: int) -> bool:
    url = f"{rest_url}/v1/models/{MODEL}/versions/{version}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            states = [s["state"] for s in json.load(response)["model_version_status"]]
    except OSError:
        return False
    return states == ["AVAILABLE"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--rounds", type=int, default=3, help="versions published per setting")
    parser.add_argument("--out", type=Path, default=results_file.default_path("warmup.json"))
    args = parser.parse_args()

    import grpc
    import tensorflow as tf

    from serving.tfs_apis import predict_pb2, prediction_service_pb2_grpc
    from text_contract.layout import WARMUP_REQUESTS_FILE
    from text_contract.signature import INPUT_NAME
    from text_contract.tokenizer import TokenizerContract

    shipped = latest_version(args.models_dir, MODEL)
    tokens = np.zeros((1, TokenizerContract.read(shipped).maxlen), np.int32)
    tokens[0, -3:] = (1, 20, 30)

    with tempfile.TemporaryDirectory() as scratch:
        plain = latest_version(write_export(args.models_dir, Path(scratch) / "plain", xla=False, trim=False), MODEL)
        sources = {"shipped (XLA + trimmed)": shipped, "plain (500 steps)": plain}
        base = Path(scratch) / "models"
        config = Path(scratch) / "models.config"
        config.write_text(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "/models/{MODEL}" '
            'model_platform: "tensorflow" } }\n'
        )
        shutil.copytree(shipped, base / MODEL / "1")
        server = start_model_server(
            base, Path(scratch), config=config, poll_seconds=0.05, batching=False, wait_for=[MODEL]
        )
        channel = grpc.insecure_channel(server.address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        settings = [(export, warmup) for export in sources for warmup in (True, False)]
        results: dict[str, dict[str, list[float]]] = {
            label(*setting): {"available_s": [], "first_ms": [], "second_ms": []} for setting in settings
        }
        try:
            version = 1
            for round_number in range(len(settings) * args.rounds):
                export, warmup = settings[round_number % len(settings)]
                times = results[label(export, warmup)]
                version += 1
                staging = base / MODEL / f".staging-{version}"
                shutil.copytree(sources[export], staging)
                if not warmup:
                    (staging / WARMUP_REQUESTS_FILE).unlink()
                published = time.monotonic()
                staging.rename(base / MODEL / str(version))
                while not available(server.rest, version):
                    if time.monotonic() > published + 180:
                        raise TimeoutError(f"version {version} never became AVAILABLE")
                    time.sleep(0.01)
                times["available_s"].append(time.monotonic() - published)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = MODEL
                request.model_spec.version.value = version
                request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(tokens))
                for key in ("first_ms", "second_ms"):
                    started = time.perf_counter()
                    stub.Predict(request, timeout=30)
                    times[key].append((time.perf_counter() - started) * 1000)
        finally:
            channel.close()
            server.process.stop(timeout=30)

    print(render(results))
    results_file.save(args.out, results)


def render(results: dict[str, dict[str, list[float]]]) -> str:
    """Per export and warmup setting: p50 time to AVAILABLE, first and second request."""
    return table(
        ("LSTM export, warmup file", "versions", "publish to AVAILABLE p50 s", "first request p50 ms",
         "slowest first request ms", "second request p50 ms"),
        ((setting, len(times["available_s"]), f"{np.median(times['available_s']):.1f}", ms(np.median(times["first_ms"])),
          ms(max(times["first_ms"])), ms(np.median(times["second_ms"]))) for setting, times in results.items()))


def label(export: str, warmup: bool) -> str:
    return f"{export}, {'with' if warmup else 'without'} warmup"


if __name__ == "__main__":
    main()
