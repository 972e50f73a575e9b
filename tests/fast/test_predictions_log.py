"""The sampled prediction log: sampling, hashing, rotation, failure, and its reader."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from serving.predictions_log.summary import summarize
from serving.predictions_log.writer import FILE_NAME, PredictionLog, text_hash

ROOT = Path(__file__).resolve().parents[2]


def entry(version: int = 1, probability: float = 0.8, oov: int = 1) -> dict:
    return {"request_id": "r1", "transport": "http", "model": "lstm", "model_name": "imdb_lstm", "version": version,
            "arm": "stable", "positive_probability": probability, "label": "positive" if probability >= 0.5 else "negative",
            "num_tokens": 10, "num_out_of_vocabulary": oov, "truncated": False}


def lines(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob(f"{FILE_NAME}*"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_texts_are_hashed_with_the_salt_unless_kept(tmp_path: Path):
    hashed = PredictionLog(tmp_path / "hashed", 1.0, keep_texts=False, salt="s3cret", max_bytes=10**6, max_files=2)
    hashed.record(entry(), "A private review by Jane Doe")
    hashed.flush()
    (line,) = lines(tmp_path / "hashed")
    assert "text" not in line and "Jane" not in json.dumps(line)
    assert line["text_hash"] == text_hash("A private review by Jane Doe", b"s3cret") != text_hash("A private review by Jane Doe", b"other")
    assert line["time"].endswith("Z") and line["version"] == 1 and line["arm"] == "stable"
    kept = PredictionLog(tmp_path / "kept", 1.0, keep_texts=True, salt=None, max_bytes=10**6, max_files=2)
    kept.record(entry(), "Kept, with ünïcode")
    kept.flush()
    assert lines(tmp_path / "kept")[0]["text"] == "Kept, with ünïcode"
    with pytest.raises(ValueError, match="salt"):
        PredictionLog(tmp_path, 1.0, keep_texts=False, salt=None, max_bytes=10, max_files=1)


def test_sampling_follows_the_rate():
    log = PredictionLog(Path("/nonexistent"), 0.1, keep_texts=True, salt=None, max_bytes=10, max_files=1)
    sampled = sum(log.sampled() for _ in range(20_000))
    assert abs(sampled - 2000) < 4 * math.sqrt(20_000 * 0.1 * 0.9)
    assert not any(PredictionLog(Path("/x"), 0.0, True, None, 10, 1).sampled() for _ in range(1000))


def test_files_rotate_and_stay_bounded(tmp_path: Path):
    log = PredictionLog(tmp_path, 1.0, keep_texts=True, salt=None, max_bytes=2000, max_files=3)
    for index in range(200):
        log.record(entry(), f"review number {index}")
        if index % 10 == 9:
            log.flush()  # several batches, so that rotation happens between them
    log.flush()
    files = sorted(path.name for path in tmp_path.glob(f"{FILE_NAME}*"))
    assert files == [FILE_NAME, f"{FILE_NAME}.1", f"{FILE_NAME}.2"]
    assert all(path.stat().st_size <= 2000 for path in tmp_path.glob(f"{FILE_NAME}*"))
    kept = [line["text"] for line in lines(tmp_path)]
    assert "review number 199" in kept and "review number 0" not in kept  # the oldest went first


def test_an_unwritable_folder_drops_and_counts_lines_without_raising(tmp_path: Path, caplog):
    from prometheus_client import REGISTRY

    def dropped() -> float:
        labels = {"reason": "write_error"}
        return REGISTRY.get_sample_value("sentiment_prediction_log_dropped_total", labels) or 0

    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "log"  # under a regular file: no uid may create it, root neither
    before = dropped()
    log = PredictionLog(folder, 1.0, keep_texts=True, salt=None, max_bytes=10**6, max_files=2)
    for _ in range(5):
        log.record(entry(), "text")  # never raises
    log.flush()
    assert dropped() - before == 5
    assert f"line(s) dropped, cannot write to {folder}: [Errno 20] Not a directory" in caplog.text


def test_the_summary_reads_versions_scores_and_oov(tmp_path: Path):
    path = tmp_path / FILE_NAME
    rows = [entry(1, 0.9, 0), entry(1, 0.1, 5), entry(2, 0.95, 1)]
    for row, day in zip(rows, ("2026-11-29", "2026-11-30", "2026-11-30")):
        row["time"] = f"{day}T10:00:00.000Z"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\nnot json\n", encoding="utf-8")
    summaries, unreadable = summarize([path])
    assert unreadable == 1 and list(summaries) == [("lstm", 1), ("lstm", 2)]
    first = summaries[("lstm", 1)]
    assert (first.lines, first.positive, first.scores[9], first.scores[1]) == (2, 1, 1, 1)
    assert dict(first.oov_by_day) == {"2026-11-29": [1, 0.0], "2026-11-30": [1, 0.5]}
    shown = subprocess.run([sys.executable, "-m", "serving.predictions_log", "summary", str(path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "lstm version 1: 2 predictions (stable 2)" in shown.stdout
    assert "2026-11-30  50.0% over 1 texts" in shown.stdout and "1 line(s) skipped" in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "serving.predictions_log", "summary", str(tmp_path / "none")],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
