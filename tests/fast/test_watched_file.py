"""The operator's files (rollouts, API keys): when a change is looked for and what counts as read."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serving.gateway.watched_file import WatchedFile


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_change_is_looked_for_once_per_interval_until_the_file_is_read_again(tmp_path: Path):
    clock, path = Clock(), tmp_path / "file"
    path.write_text("one")
    watched = WatchedFile(path, interval=2.0, clock=clock)
    assert watched.read() == "one" and not watched.changed()
    path.write_text("three")  # another size: a change even within the file system's time granularity
    clock.now = 1.9
    assert not watched.changed()  # not looked at within the interval
    clock.now = 2.0
    assert watched.changed() and not watched.changed()  # looked at once
    clock.now = 4.0
    assert watched.changed()  # still changed: not read since
    assert watched.read() == "three"
    clock.now = 6.0
    assert not watched.changed()


def test_of_many_threads_asking_at_once_one_looks(tmp_path: Path):
    path = tmp_path / "file"
    path.write_text("one")
    watched = WatchedFile(path, clock=lambda: 0.0)
    watched.read()
    path.write_text("three")
    start = threading.Barrier(8)

    def ask(_: int) -> bool:
        start.wait(5)
        return watched.changed()

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers.count(True) == 1 and answers.count(False) == 7


def test_an_unreadable_file_is_tried_at_every_look_a_missing_one_once_it_appears(tmp_path: Path):
    clock, path = Clock(), tmp_path / "file"
    path.write_text("one")
    watched = WatchedFile(path, interval=1.0, clock=clock)
    watched.read()
    path.unlink()
    path.mkdir()  # its stat works, reading it does not
    assert watched.changed()
    with pytest.raises(IsADirectoryError):
        watched.read()
    clock.now = 1.0
    assert watched.changed()  # not counted as read: tried again
    path.rmdir()
    with pytest.raises(FileNotFoundError):
        watched.read()
    clock.now = 2.0
    assert not watched.changed()  # its absence counts as read
    path.write_bytes(b"\xff")
    clock.now = 3.0
    assert watched.changed()
    with pytest.raises(UnicodeDecodeError):
        watched.read()
    clock.now = 4.0
    assert not watched.changed()  # bad content counts as read, until the file changes
