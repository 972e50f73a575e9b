"""Scoring the IMDB test reviews offline (the Beam pipeline) against through the service.

    python -m benchmarks.batch_scoring --models-dir models --data aclImdb_v1_labeled.tar.gz

Writes the 25,000 test reviews to a JSON Lines file, then scores it with the LSTM's newest
version three ways, each end to end (start-up and model load included):

* ``python -m serving.batch`` on Beam's in-process runner (one process);
* the same with ``--direct_running_mode=multi_processing --direct_num_workers=2`` (a
  worker process per core, each loading the model once);
* ``sentiment predict --file`` (gRPC) through `make run`'s stack (model server, gateway,
  edge; started first and left idle: their start-up is not timed, their memory is counted).

Reports reviews per second and the peak resident memory of every process involved, summed
(the process tree, sampled every 0.1 s), and checks that each way scored every review.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import results as results_file
from benchmarks.peers.process_tree import PeakMemory, stack_pids, tree_pids
from benchmarks.stack import latest_version
from benchmarks.tables import count, table
from harness.local_stack import local_stack
from harness.processes import IMDB_TARBALL, ROOT
from text_contract.layout import SERVED_MODELS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODEL = "lstm"
SAMPLE_SECONDS = 0.1


def timed(args: list[str], resident: list[int], log: Path) -> tuple[float, float]:
    """Run ``python args`` to completion: its seconds, and the peak RSS (MiB) of its process
    tree plus the trees of the ``resident`` processes it talks to."""
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        memory = PeakMemory(lambda: tree_pids([process.pid, *resident]), SAMPLE_SECONDS)
        try:
            returncode = process.wait()
        finally:
            memory.stop()
    seconds = time.perf_counter() - started
    if returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({returncode}): see {log}\n{log.read_text()[-2000:]}")
    return seconds, memory.peak_mib


def scored_rows(paths: list[Path]) -> int:
    return sum(1 for path in paths for line in path.read_text("utf-8").splitlines() if line.strip())


def row(way: str, processes: str, reviews: int, seconds: float, peak_mib: float) -> dict:
    print(f"{way}: {reviews / seconds:.0f} reviews/s, {seconds:.1f} s, peak RSS {peak_mib:.0f} MiB", flush=True)
    return {"way": way, "processes": processes, "reviews": reviews, "seconds": round(seconds, 1),
            "reviews_per_second": round(reviews / seconds, 1), "peak_rss_mib": round(peak_mib)}


def pipeline_rows(models_dir: Path, reviews_file: Path, work: Path, reviews: int) -> list[dict]:
    rows = []
    ways = [("pipeline, in-process runner", "1 process", []),
            ("pipeline, 2 worker processes", "launcher + 2 workers",
             ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])]
    for index, (way, processes, beam_args) in enumerate(ways):
        prefix = work / f"pipeline{index}" / "scored"
        seconds, peak = timed(["-m", "serving.batch", "--input", str(reviews_file), "--output", str(prefix),
                               "--models-dir", str(models_dir), "--model", MODEL, *beam_args], [],
                              work / f"pipeline{index}.log")
        written = scored_rows(sorted(prefix.parent.glob("scored-*.jsonl")))
        if written != reviews:
            raise SystemExit(f"{way}: {written} results for {reviews} reviews")
        rows.append(row(way, processes, reviews, seconds, peak))
    return rows


def service_row(models_dir: Path, reviews_file: Path, work: Path, reviews: int) -> dict:
    (work / "stack").mkdir()
    with local_stack(models_dir, work / "stack") as stack:
        output = work / "client.jsonl"
        seconds, peak = timed(
            ["-m", "serving.client", "--target", f"127.0.0.1:{stack.grpc_port}", "predict", "--file",
             str(reviews_file), "--model", MODEL, "--output", str(output)],
            stack_pids(stack.process.pid), work / "client.log")
    predictions = [json.loads(line) for line in output.read_text("utf-8").splitlines()]
    if len(predictions) != reviews or any("error" in prediction for prediction in predictions):
        raise SystemExit(f"sentiment predict --file: {len(predictions)} results for {reviews} reviews, or errors")
    return row("`sentiment predict --file` through `make run`'s stack", "client + model server + gateway + edge",
               reviews, seconds, peak)


def render(results: dict) -> str:
    """The figures as a Markdown table."""
    caption = (f"LSTM version {results['version']}, {count(results['reviews'])} IMDB test reviews, "
               f"{results['cores']} cores; start-up included, peak RSS summed over every process involved.")
    rows = [(r["way"], r["processes"], count(r["reviews_per_second"]), f"{r['seconds']:.1f}", count(r["peak_rss_mib"]))
            for r in results["rows"]]
    return f"{caption}\n\n{table(('way', 'processes', 'reviews/s', 'seconds', 'peak RSS MiB'), rows)}\n"


def dataset(path: Path | None) -> Path:
    """``path``, else the shared copy, else the official tarball (downloaded once)."""
    if path is not None:
        return path
    if IMDB_TARBALL.is_file():
        return IMDB_TARBALL
    from training.dataset import OFFICIAL
    from training.download import fetch

    return fetch(OFFICIAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, help="the aclImdb tarball or folder [the shared copy, else downloaded]")
    parser.add_argument("--limit", type=int, help="score only this many test reviews (a quick check)")
    parser.add_argument("--out", type=Path, default=results_file.default_path("batch-scoring.json"))
    args = parser.parse_args()

    from training.dataset import load_imdb

    texts = load_imdb(dataset(args.data)).test.texts[:args.limit]
    models_dir = args.models_dir.resolve()
    version = int(latest_version(models_dir, SERVED_MODELS[MODEL]).name)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        reviews_file = work / "reviews.jsonl"
        reviews_file.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts), encoding="utf-8")
        rows = pipeline_rows(models_dir, reviews_file, work, len(texts))
        rows.append(service_row(models_dir, reviews_file, work, len(texts)))
    results = {"version": version, "reviews": len(texts), "cores": os.cpu_count(), "rows": rows}
    print("\n" + render(results))
    results_file.save(args.out, results)


if __name__ == "__main__":
    main()
