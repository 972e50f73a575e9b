"""The batch pipeline (``python -m serving.batch``) run for real on the session's trained
models: its results equal the HTTP API's answers for the same version, every input row
comes out once (a result or a dead-letter row with its reason), and bad flags and inputs
are refused with the reason."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from reviews import NEGATIVE, POSITIVE

from harness.processes import ROOT
from serving.batch.__main__ import main
from text_contract.layout import SERVED_MODELS, version_dirs
from training.dataset import load_imdb

REVIEWS = 2000
PER_REQUEST = 64  # the gateway's default limit of texts per request
MALFORMED_CSV = [  # (raw bytes of the record, the reason it is refused)
    (b'9001,"a review"with text after the quote', "malformed CSV (',' expected after '\"')"),
    (b"9002", "1 field where the header has 2"),
    (b"9003,", "the text is empty or whitespace only"),
    (b"9004,   ", "the text is empty or whitespace only"),
    (b"9005,caf\xe9 latte", "column 'review' is not UTF-8"),
    (b"9006,a,b", "3 fields where the header has 2"),
]


def newest_version(models_dir: Path) -> int:
    return max(version_dirs(models_dir / SERVED_MODELS["lstm"]))


def score(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "serving.batch", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def shards(prefix: Path, suffix: str) -> list[Path]:
    found = sorted(prefix.parent.glob(f"{prefix.name}-*-of-*{suffix}"))
    assert found, f"no shard {prefix}-*-of-*{suffix}"
    return found


def json_lines(prefix: Path) -> list[dict]:
    return [json.loads(line) for path in shards(prefix, ".jsonl") for line in path.read_text("utf-8").splitlines()]


def api_predictions(gateway, texts: list[str], version: int) -> list[dict]:
    answers = []
    for start in range(0, len(texts), PER_REQUEST):
        response = requests.post(f"{gateway.url}/v1/sentiment", timeout=30, json={
            "texts": texts[start:start + PER_REQUEST], "model": "lstm", "version": version})
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
    return answers


def write_reviews_csv(path: Path, reviews: list[str], malformed_after: int) -> tuple[dict[int, str], dict[int, str]]:
    """A CSV of ``reviews`` (columns id, review) with MALFORMED_CSV's records after the
    ``malformed_after``-th; returns the line of each review, and of each malformed record its reason."""
    out, line = io.BytesIO(), 1
    out.write(b"id,review\r\n")
    review_lines, bad_lines = {}, {}
    for index, review in enumerate(reviews):
        if index == malformed_after:
            for raw, reason in MALFORMED_CSV:
                line += 1
                out.write(raw + b"\r\n")
                bad_lines[line] = reason
        record = io.StringIO()
        csv.writer(record).writerow([index, review])
        line += 1
        review_lines[line] = review
        out.write(record.getvalue().encode("utf-8"))
        line += record.getvalue().count("\n") - 1  # a record may span lines
    path.write_bytes(out.getvalue())
    return review_lines, bad_lines


def test_pipeline_results_equal_the_http_api_and_every_row_comes_out_once(gateway, models_dir, shared_tarball,
                                                                          tmp_path):
    reviews = load_imdb(shared_tarball).test.sample(REVIEWS, seed=39).texts
    source = tmp_path / "reviews.csv"
    review_lines, bad_lines = write_reviews_csv(source, reviews, malformed_after=REVIEWS // 2)
    version = newest_version(models_dir)

    summary = score("--input", str(source), "--column", "review", "--output", str(tmp_path / "scored"),
                    "--models-dir", str(models_dir), "--version", str(version), "--num-shards", "3").stdout
    assert f"{REVIEWS + len(MALFORMED_CSV)} rows read, {REVIEWS} scored" in summary
    assert len(shards(tmp_path / "scored", ".jsonl")) == 3

    results = json_lines(tmp_path / "scored")
    dead = json_lines(tmp_path / "scored_errors")
    assert sorted(r["line"] for r in results) == sorted(review_lines)  # each review once
    assert {row["line"]: row["reason"] for row in dead} == bad_lines and len(dead) == len(bad_lines)
    assert all(row["source"] == str(source) for row in results + dead)
    raw_records = {raw.decode("utf-8", errors="replace") for raw, _ in MALFORMED_CSV}
    assert {row["raw"] for row in dead} == raw_records

    by_line = {row["line"]: row for row in results}
    lines = sorted(review_lines)
    answers = api_predictions(gateway, [review_lines[line] for line in lines], version)
    for line, answer in zip(lines, answers):
        result = dict(by_line[line])
        assert result.pop("source") == str(source) and result.pop("line") == line
        assert math.isclose(result.pop("positive_probability"), answer.pop("positive_probability"), abs_tol=1e-6)
        assert result == answer  # label, model, version, tokens, truncation, OOV count, no-known-words, arm
    assert {answer["label"] for answer in answers} == {"positive", "negative"}
    assert any(answer["truncated"] for answer in answers)


def test_bad_json_lines_and_text_rows_reach_the_dead_letter_output_with_their_reason(models_dir, tmp_path):
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_bytes(b"\n".join([
        json.dumps({"text": POSITIVE, "id": 1}).encode(),
        b'{"text": "unterminated',
        b'["a list"]',
        b'{"review": "the wrong field"}',
        b'{"text": 42}',
        b'{"text": null}',
        b'{"text": "  "}',
        b"",
        json.dumps({"text": "caf\u00e9 " + NEGATIVE}, ensure_ascii=False).encode(),
        b'{"text": "caf\xe9"}',
    ]) + b"\n")
    text = tmp_path / "reviews.txt.gz"
    text.write_bytes(gzip.compress(f"{NEGATIVE}\n\n{POSITIVE}\r\n".encode()))

    score("--input", str(jsonl), "--input", str(text), "--output", str(tmp_path / "out" / "scored"),
          "--dead-letter", str(tmp_path / "bad" / "rows"), "--output-format", "csv", "--models-dir", str(models_dir))

    rows = [row for path in shards(tmp_path / "out" / "scored", ".csv")
            for row in csv.DictReader(io.StringIO(path.read_text("utf-8")))]
    assert sorted((Path(row["source"]).name, int(row["line"]), row["label"]) for row in rows) == [
        ("reviews.jsonl", 1, "positive"), ("reviews.jsonl", 9, "negative"),
        ("reviews.txt.gz", 1, "negative"), ("reviews.txt.gz", 3, "positive")]
    assert all(row["arm"] == "pinned" and row["model_name"] == "imdb_lstm" for row in rows)
    dead = {(Path(row["source"]).name, row["line"]): row["reason"] for row in json_lines(tmp_path / "bad" / "rows")}
    assert dead == {
        ("reviews.jsonl", 2): "not JSON (Unterminated string starting at: column 10)",
        ("reviews.jsonl", 3): "not a JSON object (got an array)",
        ("reviews.jsonl", 4): "no field 'text'",
        ("reviews.jsonl", 5): "field 'text' is a number, not a string",
        ("reviews.jsonl", 6): "field 'text' is null, not a string",
        ("reviews.jsonl", 7): "the text is empty or whitespace only",
        ("reviews.jsonl", 8): "empty line (expected a JSON object)",
        ("reviews.jsonl", 10): "not UTF-8 (invalid continuation byte at byte 13)",
        ("reviews.txt.gz", 2): "the text is empty or whitespace only",
    }


@pytest.mark.parametrize(("args", "message"), [
    (["--input", "{tmp}/missing-*.csv"], "no file matches"),
    (["--input", "{tmp}"], "is a folder: name its files"),
    (["--input", "{tmp}/in.txt", "--version", "99"], "lstm has no version 99"),
    (["--input", "{tmp}/in.txt", "--model", "gpt"], "unknown model 'gpt'"),
    (["--input", "{tmp}/in.txt", "--dead-letter", "{tmp}/out-bad"], "would overwrite each other's files"),
    (["--input", "{tmp}/in.txt", "--min-batch-size", "300"], "--min-batch-size 300 is above --max-batch-size 256"),
])
def test_bad_flags_and_inputs_are_refused_with_the_reason(models_dir, tmp_path, capsys, args, message):
    (tmp_path / "in.txt").write_text(POSITIVE + "\n")
    argv = [arg.format(tmp=tmp_path) for arg in args]
    assert main([*argv, "--output", str(tmp_path / "out"), "--models-dir", str(models_dir)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("out*"))  # nothing was written
