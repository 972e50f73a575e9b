"""API keys in process: the key file, HTTP and gRPC refusals, rotation and reload."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from serving.client import SentimentClient
from serving.gateway.access.api_keys import (
    KeyFileError,
    KeyStore,
    hash_line,
    new_key,
    parse_key_file,
    presented_key,
)
from serving.gateway.api.grpc_server import build_server
from serving.gateway.api.http_app import create_app
from serving.gateway.data_plane import DataPlane
from serving.gateway.watched_file import CHECK_SECONDS

ROOT = Path(__file__).resolve().parents[2]
BODY = {"text": "a good film"}


def test_lines_match_their_key_only():
    key, other = new_key(), new_key()
    (entry,) = parse_key_file(hash_line("app", key), "test")
    assert entry.key_id == "app" and entry.matches(key) and not entry.matches(other)
    assert key not in hash_line("app", key) and hash_line("app", key) != hash_line("app", key)  # fresh salts


@pytest.mark.parametrize("text", ["app 00ff", "app zz " + "0" * 64, "bad id! 00 " + "0" * 64, "app 0 " + "0" * 64])
def test_a_malformed_line_is_refused_with_its_number(text):
    with pytest.raises(KeyFileError, match="keys line 2"):
        parse_key_file("# comment\n" + text, "keys")


def test_the_presented_key_comes_from_bearer_or_x_api_key():
    assert presented_key("Bearer abc") == "abc" and presented_key("bearer  abc ") == "abc"
    assert presented_key("Basic abc", "xyz") == "xyz" and presented_key(None, None) is None
    assert presented_key("Bearer ", None) is None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, str, str]:
    first, second = new_key(), new_key()
    file = tmp_path / "api-keys"
    file.write_text(f"# rotation: both valid\n{hash_line('old', first)}\n{hash_line('new', second)}\n")
    return file, first, second


@pytest.fixture
def guarded(settings, model_client, keys) -> DataPlane:
    return DataPlane(settings.with_changes(api_keys_file=keys[0]), client=model_client)


def test_http_asks_for_a_key_on_every_route_but_probes_documents_and_metrics(guarded, settings, keys, caplog):
    _, first, second = keys
    with create_app(settings, guarded).test_client() as http, caplog.at_level(logging.DEBUG):
        missing = http.post("/v1/sentiment", json=BODY)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="sentiment"'
        assert missing.get_json()["error"]["code"] == "unauthenticated" and "X-Request-ID" in missing.headers
        wrong = http.post("/v1/sentiment", json=BODY, headers={"Authorization": "Bearer sk_wrong"})
        assert wrong.status_code == 401 and wrong.get_json()["error"]["message"] == "the API key is not valid"
        assert http.get("/v1/models").status_code == 401 and http.post("/v2/models/lstm/infer", json={}).status_code == 401
        assert http.post("/v1/sentiment", json=BODY, headers={"Authorization": f"Bearer {first}"}).status_code == 200
        assert http.post("/v1/sentiment", json=BODY, headers={"X-API-Key": second}).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.yaml", "/docs", "/", "/v2/health/live"):
            assert http.get(path).status_code == 200, path
        assert http.get("/no/such/route").status_code == 404
    assert not [record for record in caplog.records if first in record.getMessage() or second in record.getMessage()]


def test_grpc_answers_unauthenticated_without_a_valid_key(guarded, settings, keys):
    _, first, _ = keys
    server, _, port = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=0), guarded)
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        for api_key in (None, "sk_wrong"):
            with SentimentClient(target, api_key=api_key) as client, pytest.raises(grpc.RpcError) as refused:
                client.predict(["a good film"])
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with SentimentClient(target, api_key=first) as client:
            assert client.predict(["a good film"])[0].label == "positive" and client.list_models()
    finally:
        server.stop(0)


def test_an_edited_key_file_takes_effect_without_a_restart(keys, caplog):
    file, first, second = keys
    clock = Clock()
    store = KeyStore(file, clock=clock)
    reloads = {outcome: REGISTRY.get_sample_value("sentiment_api_key_reloads_total", {"outcome": outcome}) or 0
               for outcome in ("ok", "error")}
    assert (store.identify(first), store.identify(second)) == ("old", "new")
    file.write_text(hash_line("new", second) + "\n")  # the old key revoked
    os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))
    clock.now = 0.9 * CHECK_SECONDS
    assert store.identify(first) == "old"  # the file is looked at once a second
    clock.now = CHECK_SECONDS
    assert (store.identify(first), store.identify(second)) == (None, "new")
    file.write_text("not a key line\n")  # a broken edit keeps the keys that were valid
    clock.now = 2 * CHECK_SECONDS
    assert store.identify(second) == "new" and "API keys not reloaded, the previous ones stay" in caplog.text
    assert "line 1: expected" in caplog.text
    assert REGISTRY.get_sample_value("sentiment_api_key_file_rejected") == 1  # ApiKeyFileRejected pages meanwhile
    file.unlink()  # so does a missing file
    clock.now = 3 * CHECK_SECONDS
    assert store.identify(second) == "new" and "cannot read the API key file" in caplog.text
    file.write_text(hash_line("old", first) + "\n")
    clock.now = 4 * CHECK_SECONDS
    assert (store.identify(first), store.identify(second)) == ("old", None)  # and it is read again once back
    # Each reload counted by outcome: an operator is told (ApiKeyFileRejected) that a revocation did not take.
    assert {outcome: REGISTRY.get_sample_value("sentiment_api_key_reloads_total", {"outcome": outcome}) - before
            for outcome, before in reloads.items()} == {"ok": 2, "error": 2}
    assert REGISTRY.get_sample_value("sentiment_api_key_file_rejected") == 0
    file.write_text("not a key line\n")
    with pytest.raises(KeyFileError, match="line 1"):
        KeyStore(file)  # at start-up a broken file is an error


def test_the_create_command_prints_the_key_once_and_its_line(tmp_path):
    made = subprocess.run([sys.executable, "-m", "serving.gateway.access.api_keys", "create", "reviews-app"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = made.stderr.strip().rsplit(" ", 1)[1]
    (entry,) = parse_key_file(made.stdout, "stdout")
    assert entry.key_id == "reviews-app" and entry.matches(key) and key not in made.stdout
    refused = subprocess.run([sys.executable, "-m", "serving.gateway.access.api_keys", "create", "bad id"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "key id" in refused.stderr


def test_v2_refusals_use_the_protocol_error_shape_and_the_document_shows_the_schemes(guarded, settings):
    with create_app(settings.with_changes(api_keys_file=guarded.settings.api_keys_file), guarded).test_client() as http:
        refused = http.post("/v2/models/lstm/infer", json={})
        assert refused.status_code == 401 and isinstance(refused.get_json()["error"], str)
        spec = http.get("/openapi.json").get_json()
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "401" in spec["paths"]["/v1/sentiment"]["post"]["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]
