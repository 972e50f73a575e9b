"""Fetching a dataset tarball: resumed after a broken connection, retried, checksummed.

The file is written to ``<cache>/<name>.part`` and renamed only once complete and
verified, so an interrupted download resumes (HTTP ``Range``) on the next attempt or
the next run, and a cached file is used again without the network. A progress bar
with the size and speed is shown on a terminal; logs get one line at the start and
one at the end.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 16


class DownloadError(Exception):
    """The file could not be fetched or does not match its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str  # file name in the cache
    md5: str | None = None  # None: the publisher gives no checksum


def default_cache_dir() -> Path:
    """Keras's dataset cache (``$KERAS_HOME/datasets``, else ``~/.keras/datasets``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def fetch(remote: RemoteFile, cache_dir: Path | None = None, *, attempts: int = 4, backoff_seconds: float = 2.0) -> Path:
    """The cached copy of ``remote``, downloaded first when missing or not matching its checksum."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / remote.name
    if target.is_file() and _matches(target, remote.md5):
        print(f"using the cached {target}", flush=True)
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the download cache {cache_dir} ({error})") from error
    partial = cache_dir / f"{remote.name}.part"
    for attempt in range(1, attempts + 1):
        try:
            _download(remote.url, partial)
            break
        except (urllib.error.URLError, OSError, ValueError) as error:
            if attempt == attempts:
                raise DownloadError(f"cannot download {remote.url} after {attempts} attempts ({error})") from error
            delay = backoff_seconds * 2 ** (attempt - 1)
            print(f"download interrupted ({error}); attempt {attempt + 1} of {attempts} in {delay:.0f} s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
    if not _matches(partial, remote.md5):
        partial.unlink()
        raise DownloadError(f"{remote.url}: the download does not match its MD5 checksum {remote.md5}")
    partial.replace(target)
    return target


def _download(url: str, partial: Path) -> None:
    """Append the rest of ``url`` to ``partial`` (all of it when the server ignores ``Range``)."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        resumed = have > 0 and response.status == 206
        start = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        size = f"{total / 1e6:.1f} MB" if total else "size unknown"
        print(f"downloading {url} ({size}{', resuming' if resumed else ''}) to {partial.parent}", flush=True)
        started = time.monotonic()
        with partial.open("ab" if resumed else "wb") as out, _progress(total, start) as advance:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                advance(len(chunk))
    received = partial.stat().st_size
    if total is not None and received < total:
        raise OSError(f"connection closed after {received:,} of {total:,} bytes")
    print(f"downloaded {received / 1e6:.1f} MB in {time.monotonic() - started:.1f} s", flush=True)


@contextmanager
def _progress(total: int | None, completed: int) -> Iterator[Callable[[int], None]]:
    """A byte progress bar on a terminal (rich, which Keras already depends on); silent in logs."""
    if not sys.stdout.isatty():
        yield lambda size: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    with Progress(BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("download", total=total, completed=completed)
        yield lambda size: bar.advance(task, size)


def _matches(path: Path, md5: str | None) -> bool:
    if md5 is None:
        return True
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == md5
