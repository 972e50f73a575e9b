"""Volume, score distribution and out-of-vocabulary trend per model version, from log files."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SCORE_BINS = 10


@dataclass
class VersionSummary:
    lines: int = 0
    positive: int = 0
    arms: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    scores: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)
    first: str = ""
    last: str = ""
    # per day: (texts, sum of out-of-vocabulary ratios)
    oov_by_day: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))

    def add(self, entry: dict) -> None:
        self.lines += 1
        probability = float(entry["positive_probability"])
        self.positive += probability >= 0.5
        self.arms[entry.get("arm", "?")] += 1
        self.scores[min(SCORE_BINS - 1, int(probability * SCORE_BINS))] += 1
        moment = entry["time"]
        self.first = min(self.first, moment) if self.first else moment
        self.last = max(self.last, moment)
        tokens = entry["num_tokens"]
        day = self.oov_by_day[moment[:10]]
        day[0] += 1
        day[1] += entry["num_out_of_vocabulary"] / tokens if tokens else 0.0


def read_entries(paths: Iterable[Path]) -> Iterator[tuple[Path, int, dict | None]]:
    """(file, line number, entry), the entry None for a line that is not a prediction."""
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line)
                    valid = isinstance(entry, dict) and {"model", "version", "positive_probability",
                                                         "time", "num_tokens", "num_out_of_vocabulary"} <= entry.keys()
                except ValueError:
                    valid = False
                yield path, number, entry if valid else None


def summarize(paths: Iterable[Path]) -> tuple[dict[tuple[str, int], VersionSummary], int]:
    """Summaries per (model, version), and the number of lines that could not be read."""
    summaries: dict[tuple[str, int], VersionSummary] = defaultdict(VersionSummary)
    unreadable = 0
    for _path, _number, entry in read_entries(paths):
        if entry is None:
            unreadable += 1
            continue
        summaries[(entry["model"], int(entry["version"]))].add(entry)
    return dict(sorted(summaries.items())), unreadable


def report(summaries: dict[tuple[str, int], VersionSummary], unreadable: int) -> str:
    out = []
    for (model, version), summary in summaries.items():
        arms = ", ".join(f"{arm} {count}" for arm, count in sorted(summary.arms.items()))
        out.append(f"{model} version {version}: {summary.lines} predictions ({arms}), "
                   f"{summary.first} .. {summary.last}")
        out.append(f"  positive: {summary.positive / summary.lines:.1%}")
        peak = max(summary.scores)
        for index, count in enumerate(summary.scores):
            bar = "#" * round(30 * count / peak) if peak else ""
            out.append(f"  p {index / SCORE_BINS:.1f}-{(index + 1) / SCORE_BINS:.1f} {count:>8} {bar}")
        out.append("  out-of-vocabulary share of words, mean per text, by day:")
        for day, (texts, ratios) in sorted(summary.oov_by_day.items()):
            out.append(f"    {day} {ratios / texts:6.1%} over {int(texts)} texts")
    if not summaries:
        out.append("no predictions in the given files")
    if unreadable:
        out.append(f"{unreadable} line(s) skipped: not a prediction line")
    return "\n".join(out)
