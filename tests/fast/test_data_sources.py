"""Where the training data comes from: the Makefile's choice of DATA, the download
(resume, retry, checksum) and the compose trainer's mounted copy."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from training.download import DownloadError, RemoteFile, fetch

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


# -- the Makefile: DATA given, else the shared copy when it exists, else the download --

def training_command(**variables: str) -> str:
    """The `python -m training` line `make run` would execute (dry run)."""
    overrides = [f"{name}={value}" for name, value in variables.items()]
    out = subprocess.run(["make", "-n", "-s", "models", "MODELS_DIR=/nonexistent", *overrides],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return next(line for line in out.splitlines() if "-m training" in line)


def test_make_uses_data_when_given(tmp_path):
    assert "--data /elsewhere/imdb.tar.gz " in training_command(DATA="/elsewhere/imdb.tar.gz",
                                                                SHARED_DATA=str(tmp_path))


def test_make_uses_the_shared_copy_when_it_exists(tmp_path):
    (tmp_path / "aclImdb_v1_labeled.tar.gz").write_bytes(b"")
    assert f"--data {tmp_path}/aclImdb_v1_labeled.tar.gz " in training_command(SHARED_DATA=str(tmp_path))


def test_make_leaves_the_download_to_the_trainer_without_a_copy(tmp_path):
    assert "--data" not in training_command(SHARED_DATA=str(tmp_path / "absent"))


# -- the download --

class _Server(http.server.ThreadingHTTPServer):
    cut_first_response_after: int | None = None  # bytes; then the connection drops
    ranges: list[str | None]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; may break the first response off midway."""

    def do_GET(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        requested = self.headers.get("Range")
        server.ranges.append(requested)
        start = int(requested.removeprefix("bytes=").rstrip("-")) if requested else 0
        body = PAYLOAD[start:]
        self.send_response(206 if requested else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_first_response_after is not None and len(server.ranges) == 1:
            self.wfile.write(body[:server.cut_first_response_after])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.ranges = []
    # shutdown() waits for the loop's next poll: 0.5 s by default.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/aclImdb_v1.tar.gz"


def test_download_is_checked_and_cached(server, tmp_path):
    path = fetch(RemoteFile(url(server), "data.tar.gz", PAYLOAD_MD5), tmp_path, backoff_seconds=0)
    assert path == tmp_path / "data.tar.gz" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.tar.gz"]  # no partial file left

    server.shutdown()  # the cached copy needs no network
    assert fetch(RemoteFile(url(server), "data.tar.gz", PAYLOAD_MD5), tmp_path, attempts=1) == path


def test_a_broken_connection_is_resumed_where_it_stopped(server, tmp_path):
    server.cut_first_response_after = 300_000
    path = fetch(RemoteFile(url(server), "data.tar.gz", PAYLOAD_MD5), tmp_path, backoff_seconds=0)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [None, "bytes=300000-"]


def test_a_checksum_mismatch_is_an_error_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match="does not match its MD5 checksum"):
        fetch(RemoteFile(url(server), "data.tar.gz", "0" * 32), tmp_path, backoff_seconds=0)
    assert list(tmp_path.iterdir()) == []


def test_no_network_is_an_error_naming_the_url_after_the_retries(tmp_path, capsys):
    closed = "http://127.0.0.1:9/aclImdb_v1.tar.gz"  # the discard port: nothing listens
    with pytest.raises(DownloadError, match=f"cannot download {closed} after 3 attempts"):
        fetch(RemoteFile(closed, "data.tar.gz", PAYLOAD_MD5), tmp_path, attempts=3, backoff_seconds=0)
    assert capsys.readouterr().err.count("download interrupted") == 2


def test_file_urls_work_for_local_mirrors(tmp_path):
    mirror = tmp_path / "mirror.tar.gz"
    mirror.write_bytes(PAYLOAD)
    path = fetch(RemoteFile(mirror.as_uri(), "data.tar.gz", PAYLOAD_MD5), tmp_path / "cache")
    assert path.read_bytes() == PAYLOAD


# -- the compose trainer: IMDB_DATA_DIR may name the folder or the tarball itself --

@pytest.fixture
def entrypoint(tmp_path) -> Path:
    """The trainer's entrypoint with `python` replaced by a recorder of its arguments and environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\necho "SENTIMENT_DATA=${SENTIMENT_DATA:-unset} $*"\n')
    fake.chmod(0o755)
    shutil.copy(ROOT / "deploy" / "trainer-entrypoint.sh", tmp_path / "entrypoint.sh")
    return tmp_path


def run_entrypoint(entrypoint: Path, data: Path) -> str:
    env = {**os.environ, "PATH": f"{entrypoint / 'bin'}:{os.environ['PATH']}",
           "SENTIMENT_DATA": str(data), "SENTIMENT_MODELS_DIR": str(entrypoint / "models")}
    return subprocess.run(["sh", str(entrypoint / "entrypoint.sh")], env=env, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("mounted", ["folder", "tarball"])
def test_compose_trainer_uses_the_mounted_copy(entrypoint, mounted):
    folder = entrypoint / "data"
    folder.mkdir()
    (folder / "aclImdb_v1.tar.gz").write_bytes(b"")
    # The compose file mounts IMDB_DATA_DIR at /data and points at /data/<IMDB_DATA_FILE>.
    mount = folder if mounted == "folder" else folder / "aclImdb_v1.tar.gz"
    out = run_entrypoint(entrypoint, mount / "aclImdb_v1.tar.gz")
    assert f"SENTIMENT_DATA={mount}" in out and "downloading" not in out


def test_compose_trainer_downloads_without_a_mounted_copy(entrypoint):
    out = run_entrypoint(entrypoint, entrypoint / "data" / "aclImdb_v1.tar.gz")
    assert "SENTIMENT_DATA=unset" in out and "not mounted; downloading" in out
