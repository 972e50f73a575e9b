"""CPU time and memory of a whole stack: every process of its session and their descendants
(a peer's daemons included), read from /proc."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> list[str]:
    # Fields after the command name, which may hold spaces: [0] state, [1] ppid, [3] session.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _processes() -> dict[int, list[str]]:
    """Every live process: its pid -> its stat fields."""
    listed: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                listed[int(entry.name)] = _stat(int(entry.name))
            except OSError:  # it ended while being listed
                continue
    return listed


def _with_descendants(roots: set[int], listed: dict[int, list[str]]) -> list[int]:
    members = set(roots)
    grew = True
    while grew:
        children = {pid for pid, fields in listed.items() if int(fields[1]) in members} - members
        members |= children
        grew = bool(children)
    return sorted(members)


def stack_pids(leader: int) -> list[int]:
    """Processes in ``leader``'s session, and every descendant of those."""
    listed = _processes()
    return _with_descendants({pid for pid, fields in listed.items() if int(fields[3]) == leader}, listed)


def tree_pids(roots: list[int]) -> list[int]:
    """``roots`` and every descendant of theirs."""
    return _with_descendants(set(roots), _processes())


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kb(pids: list[int]) -> int:
    """The summed resident memory of ``pids`` (a process that ended counts nothing)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except OSError:
            continue
    return total


class PeakMemory:
    """The peak of the summed resident memory of ``pids()``, sampled every ``interval``
    seconds in a thread from construction to ``stop()``."""

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.2) -> None:
        self._pids = pids
        self.peak_kb = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._sampler.start()

    @property
    def peak_mib(self) -> float:
        return self.peak_kb / 1024

    def _sample(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.peak_kb = max(self.peak_kb, rss_kb(self._pids()))

    def stop(self) -> None:
        self._done.set()
        self._sampler.join()


class StackMeter:
    """CPU seconds by role, and the peak of the summed resident memory, of one stack.

    ``role`` names the part of the stack a process's command line belongs to. Resident
    memory is sampled every ``interval`` seconds from start to ``stop()``.
    """

    def __init__(self, leader: int, role: Callable[[str], str], interval: float = 0.2) -> None:
        self._leader = leader
        self._role = role
        self.memory = PeakMemory(lambda: stack_pids(leader), interval)

    def cpu_seconds(self) -> dict[str, float]:
        spent: dict[str, float] = {}
        for pid in stack_pids(self._leader):
            try:
                fields = _stat(pid)
            except OSError:
                continue
            role = self._role(cmdline(pid))
            spent[role] = spent.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
        return spent

    def stop(self) -> None:
        self.memory.stop()
