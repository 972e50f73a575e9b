"""What an explanation costs: a median-length IMDB review explained against predicted.

    python -m benchmarks.explain --models-dir models

Starts the model server and the gateway on loopback and measures, one client at a time,
for each model: the model server alone (one Predict call of the review's row, then the
calls an explanation makes: the row and one variant per known word, in calls of the
batch cap) and the whole path (`POST /v1/sentiment` with and without `"explain": true`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import requests

from benchmarks import results as results_file
from benchmarks.model_cost import median_text
from benchmarks.stack import Stack, latest_version
from benchmarks.tables import table
from harness.processes import IMDB_TARBALL
from text_contract.layout import SERVED_MODELS

BATCH_CAP = 128  # the gateway's GATEWAY_COALESCE_MAX_ROWS and the model server's max_batch_size


def p50_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # the first call of a shape may pay for its compilation
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--repeats", type=int, default=20, help="timed requests per row [20]")
    parser.add_argument("--out", type=Path, default=results_file.default_path("explain.json"))
    args = parser.parse_args()

    from serving.gateway.explanations import explain
    from serving.gateway.routing.model_client import ModelServerClient
    from text_contract.tokenizer import Tokenizer, TokenizerContract
    from training.dataset import load_imdb

    review = median_text(load_imdb(args.data).test.texts)
    models_dir = args.models_dir.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as logs:
        stack = Stack(models_dir, Path(logs), http_workers=2)
        try:
            client = ModelServerClient(stack.model_server.address, 30)
            for model, name in SERVED_MODELS.items():
                version_dir = latest_version(models_dir, name)
                version = int(version_dir.name)
                tokenizer = Tokenizer(TokenizerContract.read(version_dir))
                ids, (encoded,) = tokenizer.encode_batch([review])

                def predict_rows(matrix: np.ndarray) -> np.ndarray:
                    return client.predict(name, version, matrix)[0]

                explanation = explain(review, ids[0], tokenizer, predict_rows, BATCH_CAP, 10)
                known = encoded.num_tokens - encoded.num_oov
                url = f"{stack.http_url}/v1/sentiment"
                session = requests.Session()
                row = {
                    "model": model, "words": encoded.num_tokens, "known_words": known,
                    "calls": -(-(known + 1) // BATCH_CAP),
                    "model_server_plain_ms": p50_ms(lambda: predict_rows(ids), args.repeats),
                    "model_server_explain_ms": p50_ms(
                        lambda: explain(review, ids[0], tokenizer, predict_rows, BATCH_CAP, 10), args.repeats),
                    "http_plain_ms": p50_ms(lambda: session.post(url, json={"text": review, "model": model},
                                                                 timeout=30).raise_for_status(), args.repeats),
                    "http_explain_ms": p50_ms(lambda: session.post(
                        url, json={"text": review, "model": model, "explain": True},
                        timeout=30).raise_for_status(), args.repeats),
                    "top_words": [(w.word, round(w.effect, 3)) for w in explanation.words[:5]],
                }
                rows.append(row)
            client.close()
        finally:
            stack.stop()

    results = {"review_words": rows[0]["words"] if rows else 0, "rows": rows}
    print(f"median-length IMDB test review, p50 of {args.repeats} requests, one client\n\n{render(results)}")
    for r in rows:
        print(f"{r['model']}: top words {r['top_words']}")
    results_file.save(args.out, results)


def render(results: dict) -> str:
    return table(
        ("model", "words (known)", "model calls", "model server: predict / explain ms", "HTTP: predict / explain ms",
         "explain / predict (HTTP)"),
        ((r["model"], f"{r['words']} ({r['known_words']})", r["calls"],
          f"{r['model_server_plain_ms']:.1f} / {r['model_server_explain_ms']:.1f}",
          f"{r['http_plain_ms']:.1f} / {r['http_explain_ms']:.1f}", f"{r['http_explain_ms'] / r['http_plain_ms']:.1f}x")
         for r in results["rows"]))

if __name__ == "__main__":
    main()
