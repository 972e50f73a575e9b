"""The gateway's gRPC API against a real model server with a small trained model."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_text import metric
from reviews import NEGATIVE, POSITIVE

from harness.processes import ROOT, start_grpc_gateway, start_model_server, wait_until
from serving.client import SentimentClient


@pytest.fixture
def client(grpc_gateway):
    with SentimentClient(grpc_gateway.target) as c:
        yield c


def test_single_and_batch_for_both_models(client):
    for model in ("lstm", "simple_rnn"):
        positive, negative = client.predict([POSITIVE, NEGATIVE], model=model)
        assert positive.positive_probability > negative.positive_probability
        assert (positive.model_name, positive.model_version) == (f"imdb_{model}", 1)
        assert positive.num_tokens > 10 and not positive.truncated
    (single,) = client.predict("film " * 600)
    assert single.model_name == "imdb_lstm" and single.truncated and single.num_tokens == 600


def test_list_models(client):
    models = {m.model: m for m in client.list_models()}
    assert set(models) == {"lstm", "simple_rnn"}
    assert [(v.version, v.state) for v in models["simple_rnn"].versions] == [(1, "AVAILABLE")]


def test_http_and_grpc_return_the_same_numbers(client, gateway):
    texts = [POSITIVE, NEGATIVE, "An ordinary film with some good moments", "x " * 800]
    for model in ("lstm", "simple_rnn"):
        over_http = requests.post(f"{gateway.url}/v1/sentiment", json={"texts": texts, "model": model}, timeout=10)
        over_grpc = client.predict(texts, model=model)
        for http, rpc in zip(over_http.json()["predictions"], over_grpc):
            assert http["positive_probability"] == pytest.approx(rpc.positive_probability, abs=1e-7)
            assert (http["label"], http["num_tokens"], http["truncated"], http["num_out_of_vocabulary"]) == (
                rpc.label, rpc.num_tokens, rpc.truncated, rpc.num_out_of_vocabulary)


def test_grpc_requests_appear_in_the_metrics_by_transport(client, gateway):
    route = "/sentiment.v1.SentimentService/Predict"
    labels = dict(transport="grpc", route=route, model="simple_rnn", code="OK")
    before = metric(requests.get(f"{gateway.url}/metrics", timeout=5).text, "sentiment_requests_total", **labels)
    client.predict([POSITIVE], model="simple_rnn")
    after = requests.get(f"{gateway.url}/metrics", timeout=5).text
    assert metric(after, "sentiment_requests_total", **labels) == before + 1
    assert metric(after, "sentiment_request_texts_count", transport="grpc") >= 1


def test_reflection_lists_the_services(grpc_gateway):
    with grpc.insecure_channel(grpc_gateway.target) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"sentiment.v1.SentimentService", "grpc.health.v1.Health"} <= services


def test_cli_reads_arguments_and_stdin_and_prints_what_http_returns(grpc_gateway, gateway):
    result = subprocess.run(
        [sys.executable, "-m", "serving.client", "--target", grpc_gateway.target, "predict", POSITIVE, "-"],
        input=NEGATIVE + "\n", capture_output=True, text=True, cwd=ROOT, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout)["predictions"]
    assert len(predictions) == 2 and predictions[0]["positive_probability"] > predictions[1]["positive_probability"]
    over_http = requests.post(f"{gateway.url}/v1/sentiment", json={"text": POSITIVE}, timeout=10).json()
    assert {key: type(value) for key, value in predictions[0].items()} == {
        key: type(value) for key, value in over_http["predictions"][0].items()
    }  # model_version is a number in both, not "1"
    bad = subprocess.run(
        [sys.executable, "-m", "serving.client", "--target", grpc_gateway.target, "predict", "--model", "x", "hi"],
        capture_output=True, text=True, cwd=ROOT, timeout=30,
    )
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"]["code"] == "NOT_FOUND"


def test_the_installed_sentiment_command_is_the_cli(grpc_gateway):
    command = Path(sys.executable).parent / "sentiment"  # the console script of pyproject.toml
    result = subprocess.run([str(command), "--target", grpc_gateway.target, "models"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert {m["model"] for m in json.loads(result.stdout)["models"]} == {"lstm", "simple_rnn"}
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("sentiment ")


def test_health_unavailable_and_deadline(models_dir, tmp_path):
    server = start_model_server(models_dir, tmp_path)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    gateway = start_grpc_gateway(server.address, models_dir, metrics_dir, tmp_path, GATEWAY_RPC_TIMEOUT_SECONDS="5")
    channel = grpc.insecure_channel(gateway.target)
    health = health_pb2_grpc.HealthStub(channel)

    def health_status():
        return health.Check(health_pb2.HealthCheckRequest(service="sentiment.v1.SentimentService"), timeout=2).status

    try:
        client = SentimentClient(gateway.target)
        assert client.predict([POSITIVE])[0].model_version == 1
        # A frozen model server: the client's deadline is honoured.
        server.process.popen.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as error:
            client.predict([POSITIVE], timeout=0.5)
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.5
        server.process.popen.send_signal(signal.SIGCONT)
        wait_until(lambda: requests.get(f"{server.rest}/v1/models/imdb_lstm", timeout=1).ok, 10, "thawed")
        # Model server gone: UNAVAILABLE and NOT_SERVING.
        assert server.process.stop() == 0
        with pytest.raises(grpc.RpcError) as error:
            client.predict([POSITIVE])
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        wait_until(lambda: health_status() == health_pb2.HealthCheckResponse.NOT_SERVING, 10, "NOT_SERVING")
        # Back again: SERVING, without restarting the gateway.
        server = start_model_server(models_dir, tmp_path, grpc_port=server.grpc_port, rest_port=server.rest_port)
        wait_until(lambda: health_status() == health_pb2.HealthCheckResponse.SERVING, 30, "SERVING")
        assert client.predict([POSITIVE])[0].label in ("positive", "negative")
        client.close()
    finally:
        channel.close()
        gateway.process.stop()
        server.process.stop()
