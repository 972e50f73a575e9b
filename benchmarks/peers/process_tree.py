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


def stack_pids(leader: int) -> list[int]:
    """Processes in ``leader``'s session, and every descendant of those."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        if int(fields[3]) == leader:
            members.add(int(entry.name))
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in members} - members
        members |= children
        grew = bool(children)
    return sorted(members)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class StackMeter:
    """CPU seconds by role, and the peak of the summed resident memory, of one stack.

    ``role`` names the part of the stack a process's command line belongs to. Resident
    memory is sampled every ``interval`` seconds from start to ``stop()``.
    """

    def __init__(self, leader: int, role: Callable[[str], str], interval: float = 0.2) -> None:
        self._leader = leader
        self._role = role
        self.peak_rss_kb = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._sampler.start()

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

    def _rss_kb(self) -> int:
        total = 0
        for pid in stack_pids(self._leader):
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
            except OSError:
                continue
        return total

    def _sample(self, interval: float) -> None:
        while not self._done.wait(interval):
            self.peak_rss_kb = max(self.peak_rss_kb, self._rss_kb())

    def stop(self) -> None:
        self._done.set()
        self._sampler.join()
