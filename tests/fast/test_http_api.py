"""The HTTP API in process (Flask's test client): parsing, validation, routing, model and
version selection, and the error body of every failure."""

import logging
import re

import pytest
from prometheus_client import generate_latest

from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import AVAILABLE, DataPlane
from serving.gateway.errors import ModelServerFailure, ModelServerTimeout, ModelServerUnavailable

POSITIVE = "A good film, a great plot, good acting."
NEGATIVE = "An awful film: bad plot, bad acting."


def predict(http, body=None, **kwargs):
    return http.post("/v1/sentiment", json=body, **kwargs)


def test_predictions_follow_the_model_and_describe_each_text(http):
    response = predict(http, {"texts": [POSITIVE, NEGATIVE], "model": "simple_rnn"})
    assert response.status_code == 200, response.get_json()
    positive, negative = response.get_json()["predictions"]
    assert (positive["label"], negative["label"]) == ("positive", "negative")
    assert positive["positive_probability"] > 0.5 > negative["positive_probability"]
    assert (positive["model_name"], positive["model_version"]) == ("imdb_simple_rnn", 2)
    assert (positive["num_tokens"], positive["num_out_of_vocabulary"], positive["truncated"]) == (8, 2, False)
    assert list(positive) == ["positive_probability", "label", "model_name", "model_version", "num_tokens",
                              "truncated", "num_out_of_vocabulary", "no_known_words", "arm"]
    assert positive["arm"] == "stable"


def test_one_text_goes_to_the_default_model_and_long_texts_are_cut(http, model_client):
    (prediction,) = predict(http, {"text": "good " * 30}).get_json()["predictions"]
    assert prediction["model_name"] == "imdb_lstm"
    assert prediction["truncated"] and prediction["num_tokens"] == 30  # maxlen 20 in the test contract
    assert model_client.calls == [("imdb_lstm", 2, 1)]


def test_a_pinned_version_is_used_a_loading_one_is_503_and_a_missing_one_404(http, model_client):
    assert predict(http, {"text": POSITIVE, "version": 1}).get_json()["predictions"][0]["model_version"] == 1
    model_client.versions["imdb_lstm"] = {1: AVAILABLE, 2: "LOADING", 3: "START", 4: "END"}
    assert predict(http, {"text": POSITIVE}).get_json()["predictions"][0]["model_version"] == 1
    for version in (2, 3):
        loading = predict(http, {"text": POSITIVE, "version": version})
        assert (loading.status_code, loading.headers["Retry-After"]) == (503, "1")
        assert loading.get_json()["error"] == {
            "code": "model_loading", "message": f"imdb_lstm version {version} is loading (available: [1])"}
    for version, why in ((4, "not available: end"), (5, "not available")):
        missing = predict(http, {"text": POSITIVE, "version": version})
        assert missing.status_code == 404 and "Retry-After" not in missing.headers
        assert missing.get_json()["error"]["message"] == f"imdb_lstm version {version} is {why} (available: [1])"


@pytest.mark.parametrize(
    "kwargs, status, code, fragment",
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_input", "not valid JSON"),
        ({"data": "[" * 100_000, "content_type": "application/json"}, 413, "payload_too_large", "4096 bytes"),
        ({"data": "text=hi", "content_type": "text/plain"}, 415, "unsupported_media_type", "application/json"),
        ({"json": ["text"]}, 400, "invalid_input", "JSON object"),
        ({"json": {}}, 400, "invalid_input", "exactly one of 'text'"),
        ({"json": {"text": "a", "texts": ["b"]}}, 400, "invalid_input", "exactly one of"),
        ({"json": {"text": "a", "extra": 1}}, 400, "invalid_input", "unknown field(s): extra"),
        ({"json": {"text": 5}}, 400, "invalid_input", "'text' must be a string, got number"),
        ({"json": {"text": None}}, 400, "invalid_input", "'text' must be a string, got null"),
        ({"json": {"text": "   \n"}}, 400, "invalid_input", "texts[0] is empty or whitespace only"),
        ({"json": {"texts": []}}, 400, "invalid_input", "at least one text"),
        ({"json": {"texts": "abc"}}, 400, "invalid_input", "must be a list of strings, got string"),
        ({"json": {"texts": ["ok", 3]}}, 400, "invalid_input", "texts[1] must be a string"),
        ({"json": {"texts": ["x"] * 9}}, 413, "payload_too_large", "at most 8 per request"),
        ({"json": {"text": "a" * 501}}, 413, "payload_too_large", "at most 500"),
        ({"json": {"text": "a", "model": 3}}, 400, "invalid_input", "'model' must be a string"),
        ({"json": {"text": "a", "model": "gru"}}, 404, "model_not_found", "choose one of ['lstm', 'simple_rnn']"),
        ({"json": {"text": "a", "version": "1"}}, 400, "invalid_input", "'version' must be a positive integer"),
        ({"json": {"text": "a", "version": True}}, 400, "invalid_input", "'version' must be a positive integer"),
        ({"json": {"text": "a", "version": 0}}, 400, "invalid_input", "positive integer, got 0"),
    ],
)
def test_bad_input_gets_a_4xx_naming_the_problem(http, model_client, kwargs, status, code, fragment):
    response = http.post("/v1/sentiment", **kwargs)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code
    assert fragment in response.get_json()["error"]["message"]
    assert model_client.calls == []


def test_unknown_routes_and_methods(http):
    missing = http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == {"code": "not_found", "message": "no route /v2/nothing; see /openapi.yaml"}
    wrong = http.get("/v1/sentiment")
    assert wrong.status_code == 405 and wrong.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"] and "GET" in wrong.get_json()["error"]["message"]


@pytest.mark.parametrize("failure, status, code", [
    (ModelServerUnavailable("imdb_lstm: the model server is unavailable", retry_after=1), 503,
     "model_server_unavailable"),
    (ModelServerTimeout("imdb_lstm: the model server did not answer in time"), 504, "model_server_timeout"),
    (ModelServerFailure("imdb_lstm: the model server failed (INTERNAL)"), 502, "model_server_error"),
])
def test_model_server_trouble_maps_to_5xx_with_its_message(http, model_client, failure, status, code):
    model_client.failure = failure
    response = predict(http, {"text": POSITIVE})
    assert response.status_code == status
    assert response.get_json()["error"] == {"code": code, "message": failure.message}
    assert response.headers.get("Retry-After") == ("1" if failure.retry_after else None)


def test_models_liveness_readiness_and_openapi(http, model_client, caplog):
    models = http.get("/v1/models").get_json()["models"]
    assert models == [
        {"model": "lstm", "model_name": "imdb_lstm",
         "versions": [{"version": 1, "state": "AVAILABLE"}, {"version": 2, "state": "AVAILABLE"}]},
        {"model": "simple_rnn", "model_name": "imdb_simple_rnn",
         "versions": [{"version": 1, "state": "AVAILABLE"}, {"version": 2, "state": "AVAILABLE"}]},
    ]
    assert http.get("/healthz").get_json() == {"status": "ok"}
    assert http.get("/readyz").get_json() == {"ready": True}
    model_client.versions["imdb_simple_rnn"] = {3: "LOADING"}
    with caplog.at_level(logging.INFO, "serving.gateway.data_plane"):
        not_ready = http.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json() == {"ready": False}  # model states are not for anyone who asks
    assert "readiness: lstm: AVAILABLE, simple_rnn: no available version" in caplog.messages
    assert "/v1/sentiment" in http.get("/openapi.yaml").get_data(as_text=True)


def test_a_version_without_a_tokenizer_contract_is_unavailable_not_a_crash(http, model_client):
    model_client.versions["imdb_lstm"] = {7: AVAILABLE}  # served, but its folder has no contract
    response = predict(http, {"text": POSITIVE})
    assert response.status_code == 503
    assert response.get_json()["error"]["message"] == (
        "imdb_lstm version 7: its tokenizer contract is not available to the gateway"
    )


class FailingService(DataPlane):
    """Predictions fail with an exception nobody planned for, to reach the last-resort handler."""

    def predict(self, *args, **kwargs):
        raise RuntimeError("boom in /srv/app/serving/gateway/data_plane.py")


def test_unexpected_errors_are_logged_not_leaked(settings, model_client, caplog):
    app = create_app(settings, FailingService(settings, client=model_client))
    assert app.debug is False and not app.config["PROPAGATE_EXCEPTIONS"]
    response = app.test_client().post("/v1/sentiment", json={"text": POSITIVE})
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "internal error; the failure was logged"}}
    assert "boom" in caplog.text  # the details go to the log, not to the client


def test_unknown_model_names_do_not_become_metric_labels(http):
    predict(http, {"text": POSITIVE, "model": "made-up-by-a-client"})
    predict(http, {"text": POSITIVE, "model": "simple_rnn"})
    exposition = generate_latest().decode()
    assert "made-up-by-a-client" not in exposition
    assert 'model="unknown",route="/v1/sentiment",transport="http"' in exposition
    assert 'code="200",model="simple_rnn",route="/v1/sentiment",transport="http"' in exposition


@pytest.mark.parametrize("sent, echoed", [
    ("req-42.a:b_c", True),
    ("two words", False),  # not a plain token: replaced
    ("x" * 129, False),
    (None, False),
])
def test_every_answer_carries_a_request_id(http, sent, echoed):
    headers = {} if sent is None else {"X-Request-ID": sent}
    for response in (predict(http, {"text": POSITIVE}, headers=headers), http.get("/nowhere", headers=headers)):
        answered = response.headers["X-Request-ID"]
        if echoed:
            assert answered == sent
        else:
            assert re.fullmatch(r"[0-9a-f]{32}", answered) and answered != sent


def test_cors_headers_go_only_to_the_origins_the_operator_allows(settings, service, tmp_path):
    from serving.gateway.access.api_keys import hash_line, new_key

    with create_app(settings, service).test_client() as closed:  # off by default
        answer = closed.post("/v1/sentiment", json={"text": "a good film"}, headers={"Origin": "https://app.example.com"})
        assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
    key = new_key()
    (tmp_path / "keys").write_text(hash_line("app", key) + "\n")
    allowed = settings.with_changes(cors_origins=("https://app.example.com", "http://localhost:3000"),
                                    api_keys_file=tmp_path / "keys")
    with create_app(allowed, DataPlane(allowed, client=service.client)).test_client() as http:
        preflight = http.options("/v1/sentiment", headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization"})
        assert preflight.status_code == 200  # answered without a key: a preflight carries none
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert {"authorization", "content-type"} <= {h.strip().lower() for h in
                                                     preflight.headers["Access-Control-Allow-Headers"].split(",")}
        answer = http.post("/v1/sentiment", json={"text": "a good film"},
                           headers={"Origin": "https://app.example.com", "Authorization": f"Bearer {key}"})
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert "X-Request-ID" in answer.headers["Access-Control-Expose-Headers"] and "Origin" in answer.headers["Vary"]
        other = http.post("/v1/sentiment", json={"text": "a good film"},
                          headers={"Origin": "https://evil.example", "Authorization": f"Bearer {key}"})
        assert "Access-Control-Allow-Origin" not in other.headers
        assert http.post("/v1/sentiment", json={"text": "a good film"},
                         headers={"Origin": "https://app.example.com"}).status_code == 401  # CORS is not auth
