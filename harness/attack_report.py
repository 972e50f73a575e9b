"""What each attack of the attack tier measured, written to a results file when
``SENTIMENT_ATTACK_RESULTS`` names one (``make attack``): the bystander's p50/p99 with
and without the attack, the attacker's answers, and the CPU time and peak memory of each
process of the stack meanwhile.

    python -m harness.attack_report FILE    # its table, on stdout

The published file's table is rendered into docs/operations.md by `python -m benchmarks.report`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from harness.bystander import Stats

RESULTS_VARIABLE = "SENTIMENT_ATTACK_RESULTS"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def peak_rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


class ProcessUsage:
    """CPU seconds each named process spends from here to ``stop()``, and its peak memory."""

    def __init__(self, processes: dict[str, list[int]]) -> None:
        self._processes = processes
        self._started = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in processes.items()}

    def stop(self) -> dict[str, dict[str, float]]:
        return {name: {"cpu_seconds": round(sum(cpu_seconds(pid) for pid in pids) - self._started[name], 2),
                       "peak_rss_mib": round(max(peak_rss_mib(pid) for pid in pids), 1)}
                for name, pids in self._processes.items()}


@dataclass
class AttackReport:
    entries: list[dict] = field(default_factory=list)

    def record(self, attack: str, alone: Stats, attacked: Stats, answers: dict[str, int],
               usage: dict[str, dict[str, float]]) -> None:
        def latency(stats: Stats) -> dict:
            return {"requests": stats.count, "failed": len(stats.failures),
                    "p50_ms": round(stats.p50 * 1000, 1), "p99_ms": round(stats.p99 * 1000, 1)}

        self.entries.append({"attack": attack, "bystander_alone": latency(alone),
                             "bystander_attacked": latency(attacked),
                             "attacker_answers": {str(k): v for k, v in answers.items()}, "processes": usage})

    def write(self, path: Path, command: str) -> None:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
            "command": command, "attacks": self.entries,
        }, indent=2) + "\n")


def table(results: dict) -> str:
    """The results as a Markdown table."""
    lines = ["| attack | bystander p50 / p99 alone | under attack | attacker's answers | CPU s, peak MiB per process |",
             "|---|---|---|---|---|"]
    for entry in results["attacks"]:
        alone, attacked = entry["bystander_alone"], entry["bystander_attacked"]
        answers = ", ".join(f"{count} × {answer}" for answer, count in entry["attacker_answers"].items())
        usage = "; ".join(f"{name} {u['cpu_seconds']:g} s, {u['peak_rss_mib']:g}" for name, u in entry["processes"].items())
        lines.append(f"| {entry['attack']} | {alone['p50_ms']} / {alone['p99_ms']} ms | "
                     f"{attacked['p50_ms']} / {attacked['p99_ms']} ms ({attacked['failed']} failed) | {answers} | {usage} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.attack_report", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    print(table(results), end="")


if __name__ == "__main__":
    main()
