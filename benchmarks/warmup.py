"""First-request latency after a version loads, with and without warmup requests.

    python -m benchmarks.warmup --models-dir models --rounds 5

Starts the model server on a scratch model folder, then publishes new versions of
the LSTM one after another, alternately with and without
``assets.extra/tf_serving_warmup_requests``. As soon as a version reports
AVAILABLE, one single-review Predict pinned to it is timed (the first request a
user would send after the rollout), then a second one for comparison.
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

from benchmarks.stack import latest_version
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
    parser.add_argument("--rounds", type=int, default=5, help="versions published per setting")
    args = parser.parse_args()

    import grpc
    import tensorflow as tf

    from serving.tfs_apis import predict_pb2, prediction_service_pb2_grpc
    from text_contract.layout import WARMUP_REQUESTS_FILE
    from text_contract.signature import INPUT_NAME
    from text_contract.tokenizer import TokenizerContract

    source = latest_version(args.models_dir, MODEL)
    tokens = np.zeros((1, TokenizerContract.read(source).maxlen), np.int32)
    tokens[0, -3:] = (1, 20, 30)

    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "models"
        config = Path(scratch) / "models.config"
        config.write_text(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "/models/{MODEL}" '
            'model_platform: "tensorflow" } }\n'
        )
        shutil.copytree(source, base / MODEL / "1")
        server = start_model_server(
            base, Path(scratch), config=config, poll_seconds=0.05, batching=False, wait_for=[MODEL]
        )
        channel = grpc.insecure_channel(server.address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        results: dict[str, dict[str, list[float]]] = {
            setting: {"first_ms": [], "second_ms": []} for setting in ("with warmup", "without warmup")
        }
        try:
            version = 1
            for round_number in range(2 * args.rounds):
                setting = "with warmup" if round_number % 2 == 0 else "without warmup"
                version += 1
                staging = base / MODEL / f".staging-{version}"
                shutil.copytree(source, staging)
                if setting == "without warmup":
                    (staging / WARMUP_REQUESTS_FILE).unlink()
                staging.rename(base / MODEL / str(version))
                deadline = time.monotonic() + 120
                while not available(server.rest, version):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"version {version} never became AVAILABLE")
                    time.sleep(0.01)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = MODEL
                request.model_spec.version.value = version
                request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(tokens))
                for key in ("first_ms", "second_ms"):
                    started = time.perf_counter()
                    stub.Predict(request, timeout=30)
                    results[setting][key].append((time.perf_counter() - started) * 1000)
        finally:
            channel.close()
            server.process.stop(timeout=30)

    print(f"{'setting':<16} {'first request p50 ms':>22} {'max':>8} {'second request p50 ms':>23}")
    for setting, times in results.items():
        print(f"{setting:<16} {np.median(times['first_ms']):>22.1f} {max(times['first_ms']):>8.1f} "
              f"{np.median(times['second_ms']):>23.1f}")


if __name__ == "__main__":
    main()
