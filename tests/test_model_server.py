"""The local model server through TF Serving's own gRPC stubs and REST API."""

import os
import shutil

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import prediction_log_pb2

from harness.processes import MODELS_CONFIG, start_model_server, wait_until
from serving.gateway.settings import Settings
from serving.model_server.__main__ import parse_args
from serving.model_server.config import ConfigError, load_batching_parameters, load_model_config
from serving.tfs_apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from text_contract.layout import WARMUP_REQUESTS_FILE


@pytest.fixture(scope="module")
def stubs(model_server):
    channel = grpc.insecure_channel(model_server.address)
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()


def predict_request(name="imdb_lstm", tokens=None, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    tokens = np.ones((2, 500), np.int32) if tokens is None else tokens
    request.inputs["tokens"].CopyFrom(tf.make_tensor_proto(tokens))
    return request


def test_predict_returns_probabilities_and_the_served_version(stubs):
    response = stubs[0].Predict(predict_request(), timeout=10)
    values = tf.make_ndarray(response.outputs["positive_probability"])
    assert values.shape == (2, 1) and values.dtype == np.float32 and np.all((0 <= values) & (values <= 1))
    assert (response.model_spec.name, response.model_spec.version.value) == ("imdb_lstm", 1)
    assert response.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize(
    "request_kwargs, code, message",
    [
        ({"name": "nope"}, grpc.StatusCode.NOT_FOUND, "nope"),
        ({"version": 99}, grpc.StatusCode.NOT_FOUND, "99"),
        ({"version_label": "canary"}, grpc.StatusCode.NOT_FOUND, "canary"),
        ({"signature_name": "other"}, grpc.StatusCode.INVALID_ARGUMENT, "other"),
        ({"tokens": np.ones((2, 400), np.int32)}, grpc.StatusCode.INVALID_ARGUMENT, "shape [2, 400]"),
        ({"tokens": np.ones((2, 500), np.float32)}, grpc.StatusCode.INVALID_ARGUMENT, "dtype float"),
    ],
)
def test_predict_errors_follow_tf_serving(stubs, request_kwargs, code, message):
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].Predict(predict_request(**request_kwargs), timeout=10)
    assert error.value.code() == code and message in error.value.details()


def test_unknown_input_name_and_output_filter(stubs):
    request = predict_request()
    request.inputs["text"].CopyFrom(request.inputs["tokens"])
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].Predict(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "text" in error.value.details()
    request = predict_request()
    request.output_filter.append("logits")
    with pytest.raises(grpc.RpcError) as error:
        stubs[0].Predict(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "logits" in error.value.details()


def test_metadata_and_status(stubs):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "imdb_simple_rnn"
    response = stubs[0].GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert list(signature.inputs) == ["tokens"] and list(signature.outputs) == ["positive_probability"]
    assert [d.size for d in signature.inputs["tokens"].tensor_shape.dim] == [-1, 500]

    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "imdb_lstm"
    (status,) = stubs[1].GetModelStatus(status_request, timeout=10).model_version_status
    assert status.version == 1 and status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_rest_api_like_tf_serving(model_server):
    status = requests.get(f"{model_server.rest}/v1/models/imdb_lstm", timeout=5).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    rows = [[0] * 499 + [1], [1] * 500]
    predictions = requests.post(
        f"{model_server.rest}/v1/models/imdb_lstm/versions/1:predict", json={"instances": rows}, timeout=10
    ).json()["predictions"]
    columnar = requests.post(
        f"{model_server.rest}/v1/models/imdb_lstm:predict", json={"inputs": {"tokens": rows}}, timeout=10
    ).json()["outputs"]
    assert len(predictions) == 2 and np.allclose(predictions, columnar)
    missing = requests.post(f"{model_server.rest}/v1/models/nope:predict", json={"instances": rows}, timeout=5)
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    unknown = requests.post(f"{model_server.rest}/v1/models/imdb_lstm:predict",
                            json={"inputs": {"words": rows}}, timeout=5)
    assert unknown.status_code == 400 and "input tensor alias not found in signature: words" in unknown.json()["error"]
    metrics = requests.get(f"{model_server.rest}/monitoring/prometheus/metrics", timeout=5).text
    assert ":tensorflow:serving:batching_session:processed_batch_size_count" in metrics


def scrape(model_server) -> dict[str, float]:
    text = requests.get(f"{model_server.rest}/monitoring/prometheus/metrics", timeout=5).text
    return {family.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) + "|" + sample.name:
            sample.value for family in text_string_to_metric_families(text) for sample in family.samples}


def test_rest_and_grpc_predicts_are_counted_and_timed_alike(model_server, stubs):
    predict_stub, _ = stubs
    count = ":tensorflow:serving:request_count|model_name=imdb_simple_rnn,status={}|:tensorflow:serving:request_count_total"
    latency = (":tensorflow:serving:request_latency|API=Predict,entrypoint={},model_name=imdb_simple_rnn"
               "|:tensorflow:serving:request_latency_count")
    before = scrape(model_server)
    url = f"{model_server.rest}/v1/models/imdb_simple_rnn"
    assert requests.post(f"{url}:predict", json={"instances": [[1] * 500]}, timeout=10).ok
    assert requests.post(f"{url}/versions/99:predict", json={"instances": [[1] * 500]}, timeout=10).status_code == 404
    predict_stub.Predict(predict_request("imdb_simple_rnn"), timeout=10)
    after = scrape(model_server)

    def added(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert added(count.format("OK")) == 2 and added(count.format("NOT_FOUND")) == 1
    assert added(latency.format("REST")) == 1 and added(latency.format("GRPC")) == 1


def test_new_version_is_loaded_and_broken_one_refused(models_dir, tmp_path):
    served = tmp_path / "models"
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        shutil.copytree(models_dir / name / "1", served / name / "1")
    # One version served at a time, so that the new one replaces the old.
    config = tmp_path / "latest-1.config"
    config.write_text(MODELS_CONFIG.read_text().replace("num_versions: 2", "num_versions: 1"))
    assert "num_versions: 1" in config.read_text()
    server = start_model_server(served, tmp_path, config=config)
    try:
        status_url = f"{server.rest}/v1/models/imdb_lstm"
        # A broken version 2 (no variables) is refused; version 1 keeps serving.
        broken = served / "imdb_lstm" / "2"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"corrupt")
        wait_until(lambda: any(s["version"] == "2" and s["state"] == "END"
                               for s in requests.get(status_url, timeout=2).json()["model_version_status"]),
                   30, "broken version reported")
        ok = requests.post(f"{status_url}:predict", json={"instances": [[1] * 500]}, timeout=5)
        assert ok.status_code == 200
        # A good version 3 replaces version 1.
        shutil.copytree(models_dir / "imdb_lstm" / "1", served / "imdb_lstm" / "3")
        wait_until(lambda: requests.get(f"{status_url}/versions/3", timeout=2).ok, 60, "version 3")
        wait_until(lambda: requests.get(f"{status_url}/versions/1", timeout=2).status_code == 404
                   or requests.get(f"{status_url}/versions/1", timeout=2).json()["model_version_status"][0]["state"] == "END",
                   30, "version 1 unloaded")
        assert server.process.stop() == 0
    finally:
        server.process.stop()


def test_start_up_serves_the_newest_version_of_every_model_before_loading_older_ones(models_dir, tmp_path):
    served = tmp_path / "models"
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        for version in ("1", "2"):  # models.config keeps the two newest loaded
            shutil.copytree(models_dir / name / "1", served / name / version)
    server = start_model_server(served, tmp_path, wait_for=[])
    states: dict[str, list[str]] = {"imdb_lstm": [], "imdb_simple_rnn": []}

    def version_1_available(name: str) -> bool:
        response = requests.get(f"{server.rest}/v1/models/{name}/versions/1", timeout=2)
        if response.ok:
            states[name].append(response.json()["model_version_status"][0]["state"])
        return states[name][-1:] == ["AVAILABLE"]

    try:
        for name in states:
            wait_until(lambda: version_1_available(name), 60, f"{name} version 1")
        log = server.process.log.read_text()
    finally:
        server.process.stop()

    def position(line: str) -> int:
        assert line in log, line
        return log.index(line)

    serving = position("serving imdb_lstm, imdb_simple_rnn")
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        assert position(f"{name} version 2 is available") < serving < position(f"loading {name} version 1")
    # Until its turn comes, version 1 is reported as waiting to load (TF Serving's START), not missing.
    assert states["imdb_lstm"][0] in ("START", "LOADING")


def write_warmup_file(version_dir, tokens: np.ndarray) -> None:
    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "imdb_lstm"
    log.predict_log.request.inputs["tokens"].CopyFrom(tf.make_tensor_proto(tokens))
    with tf.io.TFRecordWriter(str(version_dir / WARMUP_REQUESTS_FILE)) as writer:
        writer.write(log.SerializeToString())


def test_a_version_turns_available_only_after_its_warmup_requests_succeed(models_dir, tmp_path):
    served = tmp_path / "models"
    for name in ("imdb_lstm", "imdb_simple_rnn"):
        shutil.copytree(models_dir / name / "1", served / name / "1")
    server = start_model_server(served, tmp_path)
    status_url = f"{server.rest}/v1/models/imdb_lstm"

    def publish(version: int, warmup_tokens: np.ndarray) -> None:
        staging = served / "imdb_lstm" / f".staging-{version}"
        shutil.copytree(models_dir / "imdb_lstm" / "1", staging)
        write_warmup_file(staging, warmup_tokens)
        staging.rename(served / "imdb_lstm" / str(version))

    def status(version: int) -> dict:
        response = requests.get(f"{status_url}/versions/{version}", timeout=2)
        return response.json()["model_version_status"][0] if response.ok else {"state": "UNKNOWN"}

    try:
        # A warmup request the signature refuses fails the load, as in TF Serving.
        publish(2, np.ones((1, 400), np.int32))
        wait_until(lambda: status(2)["state"] == "END", 60, "version 2 refused")
        assert "shape [1, 400]" in status(2)["status"]["error_message"]
        ok = requests.post(f"{status_url}:predict", json={"instances": [[1] * 500]}, timeout=5)
        assert ok.status_code == 200 and status(1)["state"] == "AVAILABLE"
        # A valid one is run, then the version serves.
        publish(3, np.ones((2, 500), np.int32))
        wait_until(lambda: status(3)["state"] == "AVAILABLE", 60, "version 3 available")
        assert "imdb_lstm version 3 is available (1 warmup requests run)" in server.process.log.read_text()
    finally:
        server.process.stop()


def test_boolean_flags_take_tf_serving_syntax():
    for argv, expected in (([], False), (["--enable_batching"], True), (["--enable_batching=true"], True),
                           (["--enable_batching=false"], False)):
        assert parse_args(["--model_config_file", "m.config", *argv]).enable_batching is expected
    for argv, expected in (([], False), (["--xla_cpu_compilation_enabled=true"], True),
                           (["--xla_cpu_compilation_enabled=false"], False)):
        assert parse_args(["--model_config_file", "m.config", *argv]).xla_cpu_compilation_enabled is expected
    with pytest.raises(SystemExit):
        parse_args(["--model_config_file", "m.config", "--enable_batching=maybe"])


def test_config_files_parse_with_tf_serving_schemas(tmp_path):
    models = load_model_config(MODELS_CONFIG)
    assert [m.name for m in models] == ["imdb_lstm", "imdb_simple_rnn"]
    options = load_batching_parameters(MODELS_CONFIG.parent / "batching_parameters.txt")
    # The gateway's shared calls must fit in one batch, or the model server refuses them.
    assert Settings().coalesce_max_rows <= options.max_batch_size
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ConfigError, match="bad.config"):
        load_model_config(bad)
    bad.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\n")
    with pytest.raises(ConfigError, match="allowed_batch_sizes"):
        load_batching_parameters(bad)


def test_a_model_moved_to_another_base_path_closes_its_old_versions(models_dir, tmp_path):
    """The old versions' batch threads stop; the model serves from the new folder."""
    import threading

    from serving.model_server.manager import ModelManager

    for folder in ("a", "b"):
        shutil.copytree(models_dir / "imdb_simple_rnn" / "1", tmp_path / folder / "1")
    config = tmp_path / "models.config"

    def point_at(folder: str) -> None:
        config.write_text(f'model_config_list {{ config {{ name: "imdb_simple_rnn" base_path: "{tmp_path / folder}" '
                          'model_platform: "tensorflow" } }\n')

    def batch_threads() -> int:
        return sum(thread.name.startswith("batch-") for thread in threading.enumerate())

    point_at("a")
    before = batch_threads()
    manager = ModelManager(config, batching=load_batching_parameters(None))
    try:
        manager.poll()
        first = manager.resolve("imdb_simple_rnn")
        per_version = batch_threads() - before
        assert per_version > 0
        point_at("b")
        os.utime(config, (config.stat().st_mtime + 10,) * 2)  # a config change the poll notices
        manager.poll()
        assert manager.resolve("imdb_simple_rnn") is not first
        assert batch_threads() - before == per_version  # the old version's threads have ended
    finally:
        manager.close()
    assert batch_threads() == before
