"""The compiled, trimmed signature: the full 500-step computation's outputs, served only with XLA on.

The session's models are exported without XLA (tests/conftest.py); here the same
trained weights are exported with the shipped, XLA-compiled signature.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import requests
import tensorflow as tf

from harness.processes import start_gateway, start_model_server, wait_until
from text_contract.layout import SERVED_MODELS
from text_contract.tokenizer import START_ID, TokenizerContract
from training.export import export_version
from training.signature import compiled_shapes, serving_function
from training.warmup import warmup_shapes

MAXLEN = 500
# XLA's kernels and TensorFlow's round differently, and 500 recurrent steps over random
# tokens amplify it (measured: up to 1.8e-5 for the session's SimpleRNN, trimmed or
# not). So a compiled signature is held to 1e-6 against the same computation
# compiled, and to this against TensorFlow's.
XLA_VERSUS_TENSORFLOW = 1e-4
# TensorFlow's own kernels, trimmed against full: the trimmed steps skip leading padding,
# which changes the order of float32 sums a little (measured: up to 2.5e-6, SimpleRNN).
TRIMMED_VERSUS_FULL = {True: 1e-6, False: 1e-5}


def trained_model(models_dir: Path, name: str) -> keras.Model:
    return keras.models.load_model(models_dir / "reports" / name / "1" / "model.keras")


@pytest.fixture(scope="module")
def compiled_models(models_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    for name in SERVED_MODELS.values():
        contract = TokenizerContract.read(models_dir / name / "1")
        export_version(trained_model(models_dir, name), contract, out / name, xla=True)
    return out


def mixed_batch(rows: int, rng: np.random.Generator, longest: int = MAXLEN) -> np.ndarray:
    """Pre-padded rows of random lengths, with an all-padding row and one of exactly ``longest`` tokens."""
    tokens = np.zeros((rows, MAXLEN), np.int32)
    for row in range(rows):
        length = int(rng.integers(0, longest + 1))
        if length:
            tokens[row, MAXLEN - length] = START_ID
            tokens[row, MAXLEN - length + 1:] = rng.integers(2, 10_000, length - 1)
    tokens[0] = 0
    if rows > 1:
        tokens[-1, MAXLEN - longest:] = rng.integers(2, 10_000, longest)
    return tokens


@pytest.mark.parametrize("name", SERVED_MODELS.values())
def test_trimmed_signatures_equal_the_full_500_step_computation(compiled_models, models_dir, name):
    model = trained_model(models_dir, name)
    full = {xla: tf.function(serving_function(model, MAXLEN, xla=xla, trim=False)) for xla in (True, False)}
    exports = {  # export -> (the full computation it must equal within 1e-6, compiled?)
        "compiled": (compiled_models / name / "1", True),
        "without XLA": (models_dir / name / "1", False),
    }
    signatures = {kind: tf.saved_model.load(str(path)).signatures["serving_default"]
                  for kind, (path, _) in exports.items()}
    rng = np.random.default_rng(11)
    # Bucket edges (1, 8, 64, 128 rows), in-between sizes, chunks of 128, and short-text batches.
    for rows, longest in [(1, 500), (5, 500), (8, 40), (33, 130), (64, 500), (128, 500), (200, 500), (64, 20),
                          (2, 64)]:
        tokens = tf.constant(mixed_batch(rows, rng, longest))
        expected = {xla: function(tokens)["positive_probability"].numpy() for xla, function in full.items()}
        assert expected[False].std() > 1e-3 or rows < 3  # the weights tell rows apart
        for kind, signature in signatures.items():
            got = signature(tokens=tokens)["positive_probability"].numpy()
            compiled = exports[kind][1]
            assert got.shape == (rows, 1), kind
            assert np.abs(got - expected[compiled]).max() <= TRIMMED_VERSUS_FULL[compiled], (kind, rows, longest)
            assert np.abs(got - expected[False]).max() <= XLA_VERSUS_TENSORFLOW, (kind, rows, longest)


def test_compiled_export_warms_every_compiled_shape(compiled_models):
    from tensorflow_serving.apis import prediction_log_pb2

    from text_contract.layout import WARMUP_REQUESTS_FILE

    path = compiled_models / "imdb_lstm" / "1" / WARMUP_REQUESTS_FILE
    shapes = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        tokens = tf.make_ndarray(prediction_log_pb2.PredictionLog.FromString(record).predict_log.request.inputs["tokens"])
        shapes.append((tokens.shape[0], int(np.count_nonzero(tokens[0]))))
    assert shapes == compiled_shapes(MAXLEN) == warmup_shapes(MAXLEN, xla=True)
    assert len(shapes) == 30


def test_model_server_refuses_compiled_models_without_xla_and_serves_them_with_it(
    compiled_models, gateway, tmp_path
):
    refusing = start_model_server(compiled_models, tmp_path, xla=False, wait_for=())
    status_url = f"{refusing.rest}/v1/models/imdb_lstm/versions/1"

    def status() -> dict:
        response = requests.get(status_url, timeout=2)
        return response.json()["model_version_status"][0] if response.ok else {"state": "UNKNOWN"}

    try:
        wait_until(lambda: status()["state"] == "END", 60, "compiled version refused without XLA")
        assert "--xla_cpu_compilation_enabled=true" in status()["status"]["error_message"]
    finally:
        refusing.process.stop()

    server = start_model_server(compiled_models, tmp_path, xla=True)
    compiled_gateway = start_gateway(server.address, compiled_models, tmp_path)
    texts = ["A wonderful, moving film with a superb cast.", "Dull, predictable and far too long.",
             "It was fine.", "word " * 700]
    try:
        wait_until(lambda: requests.get(f"{compiled_gateway.url}/readyz", timeout=2).ok, 30, "gateway readiness")
        for model in SERVED_MODELS:
            body = {"texts": texts, "model": model}
            got = requests.post(f"{compiled_gateway.url}/v1/sentiment", json=body, timeout=10).json()["predictions"]
            want = requests.post(f"{gateway.url}/v1/sentiment", json=body, timeout=10).json()["predictions"]
            for compiled, plain in zip(got, want, strict=True):
                assert abs(compiled["positive_probability"] - plain["positive_probability"]) <= XLA_VERSUS_TENSORFLOW
                assert compiled["label"] == plain["label"]
        log = server.process.log.read_text()
        assert f"imdb_lstm version 1 is available ({len(compiled_shapes(MAXLEN))} warmup requests run)" in log
    finally:
        compiled_gateway.process.stop()
        server.process.stop()
