"""API keys in process: the key file, HTTP and gRPC refusals, rotation and reload, the key commands."""

from __future__ import annotations

import logging
import os
import pty
import stat
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from serving.client import SentimentClient
from serving.gateway.access.api_keys import (
    KEY_PREFIX,
    KeyFileError,
    KeyStore,
    create,
    hash_line,
    main,
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


def test_the_create_command_prints_only_the_key_on_a_terminal_and_writes_its_line(tmp_path):
    """Run as a person would, stdout on a terminal (a pseudo-TTY): the terminal shows the key
    and nothing else; the line goes to the file itself, never through a redirection."""
    file = tmp_path / "new-folder" / "api-keys"
    terminal, child_end = pty.openpty()
    # -S: no site-packages, as with any python3 in a checkout without the project's environment.
    made = subprocess.Popen([sys.executable, "-S", "-m", "serving.gateway.access.api_keys", "create", "reviews-app",
                             "--file", str(file)], cwd=ROOT, stdin=child_end, stdout=child_end,
                            stderr=subprocess.PIPE, text=True)
    os.close(child_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    messages = made.stderr.read()
    assert made.wait(timeout=60) == 0, messages
    key = shown.decode().strip()
    assert shown.decode() == f"{key}\r\n" and key.startswith(KEY_PREFIX)  # the key, one line, nothing else
    (entry,) = parse_key_file(file.read_text(), str(file))
    assert entry.key_id == "reviews-app" and entry.matches(key) and key not in file.read_text()
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and "added reviews-app" in messages and key not in messages


def test_created_keys_add_lines_in_one_rename_keeping_the_file_mode(tmp_path, capsys):
    file = tmp_path / "api-keys"
    assert main(["create", "first", "--file", str(file)]) == 0
    first = capsys.readouterr().out.strip()
    file.chmod(0o644)  # made readable for a gateway running as another user: it stays so
    before = file.stat().st_ino
    assert main(["create", "second", "--file", str(file)]) == 0
    second = capsys.readouterr().out.strip()
    assert file.stat().st_ino != before and stat.S_IMODE(file.stat().st_mode) == 0o644  # a new file renamed in
    assert [path.name for path in tmp_path.iterdir()] == ["api-keys"]  # no temporary file left
    assert KeyStore(file).identify(first) == "first" and KeyStore(file).identify(second) == "second"


def test_revoke_removes_one_line_and_the_gateway_follows(tmp_path):
    file = tmp_path / "api-keys"
    old, new = create(file, "app"), create(file, "app-2")
    clock = Clock()
    store = KeyStore(file, clock=clock)
    assert (store.identify(old), store.identify(new)) == ("app", "app-2")
    assert main(["revoke", "app", "--file", str(file)]) == 0
    os.utime(file, ns=(time.time_ns(), time.time_ns() + 10**9))  # a distinct stamp, however coarse the clock
    clock.now = CHECK_SECONDS
    assert (store.identify(old), store.identify(new)) == (None, "app-2")
    assert [entry.key_id for entry in parse_key_file(file.read_text(), "keys")] == ["app-2"]


@pytest.mark.parametrize("command, existing, message", [
    (["create", "app"], "app 00 " + "0" * 64 + "\n", "has a key 'app' already"),
    (["create", "app"], "not a key line\n", "line 1: expected"),  # the gateway would refuse it: not extended
    (["revoke", "gone"], "app 00 " + "0" * 64 + "\n", "has no key 'gone'"),
    (["create", "bad id"], "", "key id 'bad id'"),
])
def test_bad_edits_are_refused_leaving_the_file_as_it_was(tmp_path, capsys, command, existing, message):
    file = tmp_path / "api-keys"
    file.write_text(existing)
    with pytest.raises(SystemExit) as refused:
        main([*command, "--file", str(file)])
    assert refused.value.code == 2
    output = capsys.readouterr()
    assert message in output.err and output.out == "" and file.read_text() == existing


def test_a_folder_given_as_the_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["create", "app", "--file", str(tmp_path)])
    assert "is a folder" in capsys.readouterr().err


def test_a_missing_key_file_at_start_up_says_how_to_make_one(tmp_path):
    with pytest.raises(KeyFileError, match=r"no such file; make it with `python -m serving.gateway.access.api_keys "
                                           r"create ID --file FILE`"):
        KeyStore(tmp_path / "api-keys")
