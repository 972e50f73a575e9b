"""The gateway's log lines: JSON objects of one schema, an access line per request."""

from __future__ import annotations

import json
import logging

import pytest

from serving.client import SentimentClient
from serving.gateway.access.api_keys import hash_line, new_key
from serving.gateway.api.grpc_server import build_server
from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import DataPlane
from serving.gateway.observability.logs import FIELDS, JsonFormatter


def test_a_json_line_carries_the_message_and_the_request_fields():
    record = logging.LogRecord("sentiment.access", logging.INFO, __file__, 1, "POST %s", ("/v1/sentiment",), None)
    record.request_id, record.status, record.version = "abc", "200", 2
    line = json.loads(JsonFormatter().format(record))
    assert line["time"].endswith("Z") and line["level"] == "INFO" and line["logger"] == "sentiment.access"
    assert (line["message"], line["request_id"], line["status"], line["version"]) == ("POST /v1/sentiment", "abc", "200", 2)
    try:
        raise ValueError("broken")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: broken" in json.loads(JsonFormatter().format(failed))["exception"]


@pytest.fixture
def logged(settings, model_client, tmp_path):
    key = new_key()
    (tmp_path / "keys").write_text(hash_line("reviews-app", key) + "\n")
    logged_settings = settings.with_changes(access_log=True, api_keys_file=tmp_path / "keys")
    return logged_settings, DataPlane(logged_settings, client=model_client), key


def access_lines(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(record)) for record in caplog.records if record.name == "sentiment.access"]


def test_every_http_request_and_grpc_call_gets_an_access_line(logged, caplog):
    settings, service, key = logged
    with caplog.at_level(logging.INFO, logger="sentiment.access"):
        with create_app(settings, service).test_client() as http:
            http.post("/v1/sentiment?secret=1", json={"text": "a good film", "model": "simple_rnn"},
                      headers={"X-API-Key": key, "X-Request-ID": "req-1"})
            http.post("/v1/sentiment", json={"text": "a good film"})
        server, _, port = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=0), service)
        server.start()
        try:
            with SentimentClient(f"127.0.0.1:{port}", api_key=key) as client:
                client.predict(["a good film"], request_id="req-2")
        finally:
            server.stop(0)
    answered, refused, called = access_lines(caplog)
    assert {name for name in answered if name in FIELDS} == set(FIELDS)
    assert (answered["request_id"], answered["key_id"], answered["transport"], answered["route"], answered["model"],
            answered["version"], answered["status"]) == ("req-1", "reviews-app", "http", "/v1/sentiment", "simple_rnn", 2, "200")
    assert answered["bytes"] > 0 and 0 < answered["duration_s"] < 5
    assert (refused["status"], refused["key_id"]) == ("401", None)
    assert (called["transport"], called["route"], called["status"], called["key_id"], called["request_id"],
            called["version"]) == ("grpc", "/sentiment.v1.SentimentService/Predict", "OK", "reviews-app", "req-2", 2)
    text = "\n".join(caplog.messages)
    assert "secret" not in text and key not in text
