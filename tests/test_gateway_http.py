"""The gateway over real HTTP, in front of a real model server with a small trained model."""

import os
import re
import shutil
import subprocess

import keras
import numpy as np
import pytest
import requests
from prometheus_text import metric
from reviews import NEGATIVE, POSITIVE

from harness.processes import start_gateway, start_model_server, wait_until
from text_contract.tokenizer import Tokenizer, TokenizerContract
from training.dataset import load_imdb


def post(gateway, body=None, **kwargs):
    return requests.post(f"{gateway.url}/v1/sentiment", json=body, timeout=15, **kwargs)


def test_single_and_batch_predictions_for_both_models(gateway):
    for model in ("lstm", "simple_rnn"):
        response = post(gateway, {"texts": [POSITIVE, NEGATIVE], "model": model})
        assert response.status_code == 200, response.text
        positive, negative = response.json()["predictions"]
        assert positive["positive_probability"] > negative["positive_probability"]
        assert positive["model_name"] == f"imdb_{model}" and positive["model_version"] == 1
        assert positive["label"] == ("positive" if positive["positive_probability"] >= 0.5 else "negative")
        assert positive["num_tokens"] == len(re.findall(r"\w+", POSITIVE))
    single = post(gateway, {"text": POSITIVE}).json()["predictions"]
    assert len(single) == 1 and single[0]["model_name"] == "imdb_lstm"


def test_truncation_and_out_of_vocabulary_are_reported(gateway):
    (prediction,) = post(gateway, {"text": "film " * 700 + "qwzxv"}).json()["predictions"]
    assert prediction["truncated"] and prediction["num_tokens"] == 701
    assert prediction["num_out_of_vocabulary"] == 1


def test_explanations_on_the_real_model_point_at_the_words_that_carry_the_sentiment(gateway):
    for model in ("lstm", "simple_rnn"):
        response = post(gateway, {"texts": [NEGATIVE, POSITIVE], "model": model, "explain": True})
        assert response.status_code == 200, response.text
        negative, positive = response.json()["predictions"]
        assert negative["explanation"][0]["effect"] < 0 < positive["explanation"][0]["effect"]
        for prediction in (negative, positive):
            top = prediction["explanation"][0]
            assert top == max(prediction["explanation"], key=lambda word: abs(word["effect"]))
            assert not top["out_of_vocabulary"]
        # Every kept word of a long review is explained, in batched calls under the cap.
        long_review = " ".join([NEGATIVE] * 30)
        (explained,) = post(gateway, {"text": long_review, "model": model, "explain": True,
                                      "explain_top_k": 500}).json()["predictions"]
        assert len(explained["explanation"]) == min(explained["num_tokens"], 500)


def test_version_selection(gateway):
    assert post(gateway, {"text": POSITIVE, "version": 1}).json()["predictions"][0]["model_version"] == 1
    missing = post(gateway, {"text": POSITIVE, "version": 42})
    assert missing.status_code == 404 and "42" in missing.json()["error"]["message"]


# The full table of bad inputs runs in process (tests/fast/test_http_api.py); these go
# through the HTTP server too, with the deployed limits.
@pytest.mark.parametrize(
    "kwargs, status, fragment",
    [
        ({"data": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"data": "text=hi", "headers": {"Content-Type": "text/plain"}}, 415, "application/json"),
        ({"json": {"texts": ["x"] * 65}}, 413, "at most 64"),
        ({"json": {"text": "a" * 20_001}}, 413, "20000"),
        ({"data": "[" + '"x",' * 400_000 + '"x"]', "headers": {"Content-Type": "application/json"}}, 413, "bytes"),
        ({"json": {"text": "a", "model": "gru"}}, 404, "gru"),
    ],
)
def test_bad_input_gets_a_clear_4xx(gateway, kwargs, status, fragment):
    response = requests.post(f"{gateway.url}/v1/sentiment", timeout=15, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and fragment in error["message"]


def test_models_health_and_openapi(gateway):
    models = requests.get(f"{gateway.url}/v1/models", timeout=5).json()["models"]
    assert {m["model"]: m["versions"] for m in models}["lstm"] == [{"version": 1, "state": "AVAILABLE"}]
    assert requests.get(f"{gateway.url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{gateway.url}/readyz", timeout=5).json()["ready"] is True
    document = requests.get(f"{gateway.url}/openapi.yaml", timeout=5)
    assert document.ok and "/v1/sentiment" in document.text


def test_metrics_move_with_requests(gateway):
    def scrape():
        return requests.get(f"{gateway.url}/metrics", timeout=5).text

    before = scrape()
    post(gateway, {"texts": [POSITIVE, "word " * 600], "model": "simple_rnn"})
    post(gateway, {"text": ""})
    after = scrape()
    ok = dict(transport="http", route="/v1/sentiment", model="simple_rnn", code="200")
    assert metric(after, "sentiment_requests_total", **ok) == metric(before, "sentiment_requests_total", **ok) + 1
    bad = dict(route="/v1/sentiment", code="400")
    assert metric(after, "sentiment_requests_total", **bad) == metric(before, "sentiment_requests_total", **bad) + 1
    for name, labels, delta in [
        ("sentiment_request_texts_sum", {"transport": "http"}, 2),
        ("sentiment_text_tokens_count", {}, 2),
        ("sentiment_truncated_texts_total", {"model": "simple_rnn"}, 1),
        ("sentiment_model_call_duration_seconds_count", {"model": "simple_rnn"}, 1),
        ("sentiment_text_out_of_vocabulary_ratio_count", {}, 2),
    ]:
        assert metric(after, name, **labels) == metric(before, name, **labels) + delta, name
    predictions = sum(metric(after, "sentiment_predictions_total", model="simple_rnn", label=l) for l in ("positive", "negative"))
    assert predictions == sum(metric(before, "sentiment_predictions_total", model="simple_rnn", label=l) for l in ("positive", "negative")) + 2
    assert metric(after, "sentiment_in_flight_requests", transport="http") >= 1  # the scrape itself


def test_promtool_finds_no_problem_in_metrics(gateway):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make test` (Debian package prometheus)"
    post(gateway, {"text": POSITIVE})
    text = requests.get(f"{gateway.url}/metrics", timeout=5).text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result


def test_http_probabilities_equal_the_keras_model(gateway, models_dir, shared_tarball):
    texts = load_imdb(shared_tarball).test.sample(200, seed=11).texts
    served = []
    for start in range(0, len(texts), 50):
        response = post(gateway, {"texts": texts[start:start + 50], "model": "lstm"})
        served += [p["positive_probability"] for p in response.json()["predictions"]]
    model = keras.models.load_model(models_dir / "reports" / "imdb_lstm" / "1" / "model.keras")
    tokenizer = Tokenizer(TokenizerContract.read(models_dir / "imdb_lstm" / "1"))
    expected = model.predict(tokenizer.encode_batch(texts)[0], verbose=0)[:, 0]
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_model_server_down_and_back(models_dir, tmp_path):
    server = start_model_server(models_dir, tmp_path)
    gateway = start_gateway(server.address, models_dir, tmp_path, GATEWAY_RPC_TIMEOUT_SECONDS="2")
    try:
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=3).ok, 30, "ready")
        assert server.process.stop() == 0
        down = post(gateway, {"text": POSITIVE})
        assert down.status_code == 503 and down.json()["error"]["code"] == "model_server_unavailable"
        assert down.headers["Retry-After"] == "1"
        readiness = requests.get(f"{gateway.url}/readyz", timeout=5)
        assert readiness.status_code == 503 and readiness.json()["ready"] is False
        assert requests.get(f"{gateway.url}/healthz", timeout=5).ok

        server = start_model_server(models_dir, tmp_path, grpc_port=server.grpc_port, rest_port=server.rest_port)
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=3).ok, 30, "ready again")
        # Every worker reconnects by itself within its reconnect backoff (at most 1 s).
        wait_until(lambda: all(post(gateway, {"text": POSITIVE}).status_code == 200 for _ in range(6)),
                   5, "predictions after recovery")
        metrics = requests.get(f"{gateway.url}/metrics", timeout=5).text
        assert metric(metrics, "sentiment_model_server_errors_total", grpc_code="UNAVAILABLE") >= 1
    finally:
        gateway.process.stop()
        server.process.stop()


def test_gateway_workers_do_not_load_the_tensorflow_runtime(gateway):
    post(gateway, {"text": POSITIVE})  # the request path (stubs, contract, tokenizer) is now imported
    workers = subprocess.run(["pgrep", "-P", str(gateway.process.popen.pid)], capture_output=True, text=True)
    pids = [gateway.process.popen.pid, *map(int, workers.stdout.split())]
    assert len(pids) == 3  # the server + 2 workers
    for pid in pids:
        with open(f"/proc/{pid}/maps") as maps:
            assert "libtensorflow" not in maps.read(), f"process {pid} loaded the TensorFlow runtime"


def test_openapi_document_is_valid_and_matches_responses(gateway):
    import yaml
    from openapi_schema_validator import OAS30Validator
    from openapi_spec_validator import validate

    spec = yaml.safe_load(requests.get(f"{gateway.url}/openapi.yaml", timeout=5).text)
    validate(spec)

    def check(response, schema_name):
        schema = {**spec["components"]["schemas"][schema_name], "components": spec["components"]}
        OAS30Validator(schema).validate(response.json())

    check(post(gateway, {"texts": [POSITIVE, NEGATIVE], "model": "simple_rnn"}), "PredictResponse")
    check(post(gateway, {"text": ""}), "Error")
    check(requests.get(f"{gateway.url}/v1/models", timeout=5), "ListModelsResponse")


def test_in_flight_limit_and_graceful_shutdown(models_dir, tmp_path):
    """With the model server frozen, requests beyond the limit get 429 at once; on SIGTERM
    the gateway finishes the request in flight, refuses new ones and exits in bounded time."""
    import signal
    import time
    from concurrent.futures import ThreadPoolExecutor

    server = start_model_server(models_dir, tmp_path)
    gateway = start_gateway(server.address, models_dir, tmp_path, GATEWAY_MAX_IN_FLIGHT="1",
                            GATEWAY_HTTP_WORKERS="1", GATEWAY_RPC_TIMEOUT_SECONDS="10")
    pool = ThreadPoolExecutor(1)
    try:
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=3).ok, 30, "ready")
        assert post(gateway, {"text": POSITIVE}).status_code == 200  # versions cached, channel up
        server.process.popen.send_signal(signal.SIGSTOP)
        first = pool.submit(post, gateway, {"text": POSITIVE})
        wait_until(lambda: metric(requests.get(f"{gateway.url}/metrics", timeout=5).text,
                                  "sentiment_in_flight_requests", transport="http") == 2, 10,
                   "the first request in flight (and the scrape)")
        started = time.monotonic()
        refused = post(gateway, {"text": NEGATIVE})
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "too_many_requests" and time.monotonic() - started < 1

        gateway.process.popen.send_signal(signal.SIGTERM)

        def not_served() -> bool:
            # The server stops accepting: new connections are refused or left unanswered
            # until the worker exits; either way no new request is processed.
            try:
                requests.get(f"{gateway.url}/healthz", timeout=1)
            except requests.RequestException:
                return True
            return False

        wait_until(not_served, 10, "new requests no longer served")
        server.process.popen.send_signal(signal.SIGCONT)
        assert first.result(15).status_code == 200  # the request in flight completed
        started = time.monotonic()
        assert gateway.process.popen.wait(20) == 0 and time.monotonic() - started < 20
    finally:
        server.process.popen.send_signal(signal.SIGCONT)
        gateway.process.stop()
        server.process.stop()
        pool.shutdown(cancel_futures=True)


def test_every_log_line_is_json_with_one_access_line_per_request(model_server, models_dir, tmp_path):
    import json

    from harness.processes import start_grpc_gateway
    from serving.client import SentimentClient

    logs = {"GATEWAY_LOG_FORMAT": "json", "GATEWAY_ACCESS_LOG": "true"}
    gateway = start_gateway(model_server.address, models_dir, tmp_path, **logs)
    grpc_gateway = start_grpc_gateway(model_server.address, models_dir, gateway.metrics_dir, tmp_path, **logs)
    try:
        assert requests.post(f"{gateway.url}/v1/sentiment", json={"text": POSITIVE},
                             headers={"X-Request-ID": "req-ok"}, timeout=10).status_code == 200
        assert requests.get(f"{gateway.url}/v1/models?secret=1", timeout=5).ok
        assert requests.post(f"{gateway.url}/v1/sentiment", json={"text": ""}, timeout=5).status_code == 400
        with SentimentClient(grpc_gateway.target) as client:
            client.predict([POSITIVE], request_id="req-grpc")
        wait_until(lambda: gateway.process.log.read_text().count('"logger": "sentiment.access"') >= 3, 5,
                   "three access lines")
    finally:
        grpc_gateway.process.stop()
        gateway.process.stop()
    lines = [json.loads(line) for process in (gateway, grpc_gateway)
             for line in process.process.log.read_text().splitlines() if line.strip()]  # every line parses
    access = {(entry["transport"], entry["route"], entry["status"]): entry
              for entry in lines if entry["logger"] == "sentiment.access"}
    assert access["http", "/v1/sentiment", "200"]["request_id"] == "req-ok"
    assert access["http", "/v1/sentiment", "200"]["version"] == 1
    assert ("http", "/v1/models", "200") in access and ("http", "/v1/sentiment", "400") in access
    assert access["grpc", "/sentiment.v1.SentimentService/Predict", "OK"]["request_id"] == "req-grpc"
    assert any(entry["logger"].startswith("_granian") for entry in lines)  # the server's own lines too
    assert "secret" not in gateway.process.log.read_text()
    # The ids went on to the model server, whose access log names the ids each call carried.
    model_server_log = model_server.process.log.read_text()
    for given in ("req-ok", "req-grpc"):
        assert re.search(rf"Predict imdb_\w+ OK [\d.]+ ms request_id=(\S+,)?{given}\b", model_server_log), given


def test_a_crashed_worker_is_replaced_and_its_in_flight_requests_leave_the_gauge(models_dir, tmp_path):
    """A worker killed with a request in flight: a new worker serves within seconds, the
    counters keep the dead worker's counts, and its in-flight request no longer counts."""
    import signal
    from concurrent.futures import ThreadPoolExecutor

    server = start_model_server(models_dir, tmp_path)
    gateway = start_gateway(server.address, models_dir, tmp_path, GATEWAY_HTTP_WORKERS="1")
    pool = ThreadPoolExecutor(1)

    def scrape() -> str:
        return requests.get(f"{gateway.url}/metrics", timeout=5).text

    def worker() -> int:
        (pid,) = subprocess.run(["pgrep", "-P", str(gateway.process.popen.pid)],
                                capture_output=True, text=True).stdout.split()
        return int(pid)

    try:
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=3).ok, 30, "ready")
        assert post(gateway, {"text": POSITIVE}).status_code == 200
        served = metric(scrape(), "sentiment_requests_total", route="/v1/sentiment", code="200")
        crashed = worker()
        server.process.popen.send_signal(signal.SIGSTOP)
        cut_off = pool.submit(requests.post, f"{gateway.url}/v1/sentiment", json={"text": POSITIVE}, timeout=30)
        wait_until(lambda: metric(scrape(), "sentiment_in_flight_requests", transport="http") == 2, 10,
                   "the request in flight (and the scrape)")
        os.kill(crashed, signal.SIGKILL)
        with pytest.raises(requests.ConnectionError):  # its worker died under it
            cut_off.result(timeout=40)
        server.process.popen.send_signal(signal.SIGCONT)
        wait_until(lambda: requests.get(f"{gateway.url}/readyz", timeout=3).ok, 20, "a replacement worker")
        assert worker() != crashed
        assert post(gateway, {"text": NEGATIVE}).status_code == 200
        after = scrape()
        assert metric(after, "sentiment_in_flight_requests", transport="http") == 1  # the scrape itself
        assert metric(after, "sentiment_requests_total", route="/v1/sentiment", code="200") == served + 1
        assert not list(gateway.metrics_dir.glob(f"gauge_live*_{crashed}.db"))
    finally:
        server.process.popen.send_signal(signal.SIGCONT)
        gateway.process.stop()
        server.process.stop()
        pool.shutdown(cancel_futures=True)


def test_chunked_bodies_are_read_whole_and_held_to_the_size_limit(gateway):
    def chunks(body: bytes, size: int = 100):
        yield from (body[i:i + size] for i in range(0, len(body), size))

    headers = {"Content-Type": "application/json"}  # a generator body goes out chunked
    ok = requests.post(f"{gateway.url}/v1/sentiment", data=chunks(b'{"text": "%s"}' % POSITIVE.encode()),
                       headers=headers, timeout=10)
    assert ok.status_code == 200 and ok.json()["predictions"][0]["label"] == "positive"
    too_large = requests.post(f"{gateway.url}/v1/sentiment", data=chunks(b" " * 1_100_000, 65536),
                              headers=headers, timeout=10)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "payload_too_large"
