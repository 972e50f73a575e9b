"""A file an operator edits while the gateway runs (the rollouts, the API keys), re-read when it changes.

Its owner reads it once (``read``) and then asks ``changed`` on every request; the file's
stat (modification time in ns, size) is looked at no more than once per ``interval``
seconds however many threads ask, and compared with the stat of the last read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

CHECK_SECONDS = 1.0  # how often a watched file's stat is looked at

Stamp = tuple[int, int]  # (st_mtime_ns, st_size)


class WatchedFile:
    def __init__(
        self, path: Path, interval: float = CHECK_SECONDS, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next_check = -float("inf")
        self._read_stamp: Stamp | None = None  # None: not read yet, or absent when last read

    def _stamp(self) -> Stamp | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def read(self) -> str:
        """The file's text (UTF-8), whose stat ``changed`` compares with from now on.

        A missing file raises FileNotFoundError and counts as read (``changed`` tells when it
        appears); a file that cannot be read raises another OSError and does not (the next
        check tries again); content that is not UTF-8 raises UnicodeDecodeError and counts
        as read, like any other bad content, until the file changes."""
        try:
            stat = self.path.stat()  # before the read: a change in between is seen at the next check
        except FileNotFoundError:
            self._read_stamp = None
            raise
        content = self.path.read_bytes()
        self._read_stamp = stat.st_mtime_ns, stat.st_size
        return content.decode("utf-8")

    def changed(self) -> bool:
        """Whether the file differs from its last read; False within ``interval`` of the last look."""
        with self._lock:
            now = self._clock()
            if now < self._next_check:
                return False
            self._next_check = now + self.interval
        try:
            return self._stamp() != self._read_stamp
        except OSError:
            return True  # the read will name the problem
