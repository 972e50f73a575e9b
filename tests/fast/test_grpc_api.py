"""The gateway's gRPC API served in process: the same validation as HTTP, each failure
with its gRPC status and a message naming the problem."""

import json
import socket
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from prometheus_client import REGISTRY
from sentiment.v1 import sentiment_pb2

from serving.client import SentimentClient
from serving.gateway.api.grpc_server import build_server
from serving.gateway.errors import ModelServerTimeout, ModelServerUnavailable
from serving.gateway.routing.rollouts import Router

POSITIVE = "A good film, a great plot, good acting."


@pytest.fixture
def client(grpc_target):
    with SentimentClient(grpc_target) as c:
        yield c


def test_predictions_and_models_match_the_http_shapes(client):
    (prediction,) = client.predict([POSITIVE], model="simple_rnn", version=1)
    assert (prediction.label, prediction.model_name, prediction.model_version) == ("positive", "imdb_simple_rnn", 1)
    assert (prediction.num_tokens, prediction.num_out_of_vocabulary, prediction.truncated) == (8, 2, False)
    models = {m.model: m for m in client.list_models()}
    assert [(v.version, v.state) for v in models["lstm"].versions] == [(1, "AVAILABLE"), (2, "AVAILABLE")]


@pytest.mark.parametrize(
    "texts, kwargs, code, fragment",
    [
        ([], {}, grpc.StatusCode.INVALID_ARGUMENT, "at least one text"),
        (["ok", "  "], {}, grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is empty"),
        (["ok"], {"model": "gru"}, grpc.StatusCode.NOT_FOUND, "gru"),
        (["ok"], {"version": 42}, grpc.StatusCode.NOT_FOUND, "version 42 is not available"),
        (["ok"] * 9, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 8"),
        (["a" * 501], {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "at most 500"),
        (["a" * 5_000_000], {}, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),  # over the message size limit
    ],
)
def test_bad_requests_get_their_status(client, model_client, texts, kwargs, code, fragment):
    with pytest.raises(grpc.RpcError) as error:
        client.predict(texts, **kwargs)
    assert error.value.code() == code and fragment in (error.value.details() or "")
    assert model_client.calls == []


@pytest.mark.parametrize("failure, code", [
    (ModelServerUnavailable("imdb_lstm: the model server is unavailable"), grpc.StatusCode.UNAVAILABLE),
    (ModelServerTimeout("imdb_lstm: the model server did not answer in time"), grpc.StatusCode.DEADLINE_EXCEEDED),
])
def test_model_server_trouble_keeps_its_status(client, model_client, failure, code):
    model_client.failure = failure
    with pytest.raises(grpc.RpcError) as error:
        client.predict([POSITIVE])
    assert (error.value.code(), error.value.details()) == (code, failure.message)


@pytest.mark.parametrize("max_attempts, answered", [(3, True), (1, False)])
def test_the_client_retries_a_call_refused_as_unavailable(grpc_target, model_client, max_attempts, answered):
    model_client.next_failures = [ModelServerUnavailable("imdb_lstm: the model server is unavailable")]
    with SentimentClient(grpc_target, max_attempts=max_attempts) as client:
        if answered:
            (prediction,) = client.predict([POSITIVE])
            assert prediction.label == "positive"
        else:
            with pytest.raises(grpc.RpcError) as error:
                client.predict([POSITIVE])
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_waiting_for_ready_is_answered_once_the_gateway_starts(settings, service):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = f"127.0.0.1:{port}"
    with SentimentClient(target, timeout=10) as impatient, \
            SentimentClient(target, timeout=10, wait_for_ready=True) as waiting, ThreadPoolExecutor(1) as pool:
        with pytest.raises(grpc.RpcError) as refused:
            impatient.predict([POSITIVE])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        answer = pool.submit(waiting.predict, [POSITIVE])
        with pytest.raises(TimeoutError):
            answer.result(timeout=0.5)  # still waiting: nothing listens yet
        server, _, _ = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=port), service)
        server.start()
        try:
            (prediction,) = answer.result(timeout=10)
        finally:
            server.stop(0)
    assert prediction.label == "positive"


def test_an_unexpected_failure_is_internal_in_the_answer_and_the_metrics(client, model_client, caplog):
    labels = {"transport": "grpc", "route": "/sentiment.v1.SentimentService/Predict", "model": "lstm"}
    before = {code: REGISTRY.get_sample_value("sentiment_requests_total", {**labels, "code": code}) or 0
              for code in ("OK", "INTERNAL")}
    model_client.failure = RuntimeError("a bug in the gateway")
    with pytest.raises(grpc.RpcError) as error:
        client.predict([POSITIVE])
    assert (error.value.code(), error.value.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    after = {code: REGISTRY.get_sample_value("sentiment_requests_total", {**labels, "code": code}) or 0
             for code in ("OK", "INTERNAL")}
    assert (after["OK"] - before["OK"], after["INTERNAL"] - before["INTERNAL"]) == (0, 1)
    assert "a bug in the gateway" in caplog.text


def run_cli(grpc_target, capsys, *args: str) -> tuple[int, dict]:
    from serving.client.__main__ import main

    status = main(["--target", grpc_target, *args])
    captured = capsys.readouterr()
    return status, json.loads(captured.out or captured.err)


def test_the_cli_sends_a_long_file_in_requests_under_the_limit_and_keeps_its_order(grpc_target, capsys, tmp_path):
    lines = [POSITIVE if i % 3 else "An awful film: bad plot, bad acting." for i in range(30)]
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(lines) + "\n")
    # The in-process gateway takes at most 8 texts per request.
    status, output = run_cli(grpc_target, capsys, "predict", "--file", str(reviews), "--batch-size", "8",
                             "--concurrency", "3", "--model-version", "1")
    assert status == 0 and "errors" not in output
    labels = [p["label"] for p in output["predictions"]]
    assert labels == ["positive" if i % 3 else "negative" for i in range(30)]
    assert {p["model_version"] for p in output["predictions"]} == {1}


def test_the_cli_explains_in_requests_the_gateway_accepts(grpc_target, capsys, tmp_path, model_client):
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["good, great plot, bad acting"] * 10 + ["zzyzx"]))
    status, output = run_cli(grpc_target, capsys, "predict", "--file", str(reviews), "--explain", "2")
    assert status == 0, output
    assert max(rows for _, _, rows in model_client.calls) <= 8 * 4  # explained requests carry at most 8 texts
    first, last = output["predictions"][0], output["predictions"][-1]
    assert [w["word"] for w in first["explanation"]] == ["good", "great"] and "explanation_note" not in first
    assert last["explanation"] == [] and last["no_known_words"] and last["explanation_note"]
    status, plain = run_cli(grpc_target, capsys, "predict", "good plot")
    assert "explanation" not in plain["predictions"][0] and "explanation_note" not in plain["predictions"][0]


def test_the_cli_keeps_the_rows_that_succeeded_and_reports_the_others(grpc_target, capsys, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join([POSITIVE] * 8 + ["x" * 600] + [POSITIVE] * 3) + "\n")  # one text over 500 chars
    status, output = run_cli(grpc_target, capsys, "predict", "--file", str(reviews), "--batch-size", "4")
    assert status == 1
    assert [p is None for p in output["predictions"]] == [False] * 8 + [True] * 4
    (error,) = output["errors"]
    assert error["rows"] == [8, 11] and error["code"] == "RESOURCE_EXHAUSTED" and "500" in error["message"]


def test_the_cli_reads_jsonl_and_csv_and_writes_csv_and_jsonl(grpc_target, capsys, tmp_path):
    import csv

    texts = [POSITIVE, "An awful film: bad plot, bad acting.", POSITIVE]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"review": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    with (tmp_path / "in.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review"])
        writer.writerows([[i, t] for i, t in enumerate(texts)])
    for source, target in (("in.jsonl", "out.csv"), ("in.csv", "out.jsonl")):
        status = run_cli_status(grpc_target, "predict", "--file", str(tmp_path / source), "--column", "review",
                                "--output", str(tmp_path / target))
        assert status == 0
    with (tmp_path / "out.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row"], r["label"], r["error"]) for r in rows] == [
        ("0", "positive", ""), ("1", "negative", ""), ("2", "positive", "")]
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(entry["row"], entry["label"]) for entry in lines] == [(0, "positive"), (1, "negative"), (2, "positive")]


def test_the_cli_writes_failed_rows_with_their_error(grpc_target, tmp_path):
    (tmp_path / "in.txt").write_text(f"{POSITIVE}\n{'x' * 600}\n")
    status = run_cli_status(grpc_target, "predict", "--file", str(tmp_path / "in.txt"), "--batch-size", "1",
                            "--output", str(tmp_path / "out.jsonl"))
    assert status == 1
    first, second = (json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines())
    assert first["label"] == "positive" and second["row"] == 1 and second["error"]["code"] == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize("name, content, message", [
    ("in.csv", "id,body\n1,hello\n", "no column 'text' (columns: id, body)"),
    ("in.jsonl", '{"text": "fine"}\nnot json\n', "in.jsonl:2: not JSON"),
    ("in.jsonl", '{"words": "fine"}\n', "in.jsonl:1: expected an object with a string field 'text'"),
])
def test_the_cli_names_what_is_wrong_with_an_input_file(grpc_target, capsys, tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        run_cli_status(grpc_target, "predict", "--file", str(tmp_path / name))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def run_cli_status(grpc_target, *args: str) -> int:
    from serving.client.__main__ import main

    return main(["--target", grpc_target, *args])


def test_a_request_id_is_echoed_in_the_trailers_and_keeps_the_canary_arm(grpc_target, service):
    service.rollouts = Router(service.settings.models, inline="lstm: {stable: 1, candidate: 2, canary_percent: 50}")
    channel = grpc.insecure_channel(grpc_target)
    predict = channel.unary_unary("/sentiment.v1.SentimentService/Predict",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=lambda raw: raw)
    request = sentiment_pb2.PredictRequest(texts=[POSITIVE])
    _, call = predict.with_call(request, metadata=(("x-request-id", "client-7"),), timeout=5)
    assert dict(call.trailing_metadata())["x-request-id"] == "client-7"
    _, call = predict.with_call(request, metadata=(("x-request-id", "not a plain token!"),), timeout=5)
    generated = dict(call.trailing_metadata())["x-request-id"]
    assert generated != "not a plain token!" and len(generated) == 32
    with pytest.raises(grpc.RpcError) as failed:
        predict.with_call(sentiment_pb2.PredictRequest(texts=[""]), metadata=(("x-request-id", "client-8"),), timeout=5)
    assert dict(failed.value.trailing_metadata())["x-request-id"] == "client-8"
    channel.close()
    with SentimentClient(grpc_target) as client:
        arms = {request_id: {client.predict([POSITIVE], request_id=request_id)[0].arm for _ in range(3)}
                for request_id in (f"user-{n}" for n in range(20))}
    assert all(len(seen) == 1 for seen in arms.values())
    assert set().union(*arms.values()) == {"stable", "canary"}


def test_reflection_is_off_unless_asked_for(grpc_target):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(grpc_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
