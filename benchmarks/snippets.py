"""Accuracy on the rt-polarity snippets through the real serving path.

    python -m benchmarks.snippets --models-dir models

Starts the model server and the gateway on loopback (as ``make run`` does, without
the edge), sends all 10,662 snippets to ``POST /v1/sentiment`` in requests of 64
texts, and compares each answer's label with the snippet's polarity. The gateway
tokenizes with the contract of the version it serves, so this measures what users
get, tokenizer included. Evaluation data only: no model trains on the snippets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import requests

from benchmarks import results as results_file
from benchmarks.stack import Stack
from harness.processes import RT_POLARITY_TARBALL
from text_contract.layout import SERVED_MODELS
from training.snippets import Snippets, load_snippets

TEXTS_PER_REQUEST = 64
MODEL_TITLES = {"lstm": "LSTM", "simple_rnn": "SimpleRNN"}


def gateway_accuracy(gateway_url: str, model: str, snippets: Snippets) -> dict:
    """Share of snippets whose served label matches their polarity, and which version answered."""
    correct = 0
    versions = set()
    with requests.Session() as session:
        for start in range(0, len(snippets), TEXTS_PER_REQUEST):
            texts = snippets.texts[start:start + TEXTS_PER_REQUEST]
            response = session.post(f"{gateway_url}/v1/sentiment", json={"texts": texts, "model": model}, timeout=30)
            response.raise_for_status()
            for prediction, label in zip(response.json()["predictions"], snippets.labels[start:start + len(texts)]):
                correct += (prediction["label"] == "positive") == (label == 1)
                versions.add(prediction["model_version"])
    return {"model": model, "versions": sorted(versions), "snippets": len(snippets), "accuracy": correct / len(snippets)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.snippets", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--snippets", type=Path, default=RT_POLARITY_TARBALL if RT_POLARITY_TARBALL.exists() else None,
                        help="rt-polarity tarball or folder [default: ../shared copy, else the official download]")
    parser.add_argument("--out", type=Path, default=results_file.default_path("snippets.json"))
    args = parser.parse_args(argv)
    snippets = load_snippets(args.snippets)
    with tempfile.TemporaryDirectory() as logs:
        stack = Stack(args.models_dir, Path(logs), http_workers=2)
        try:
            results = [gateway_accuracy(stack.http_url, model, snippets) for model in SERVED_MODELS]
        finally:
            stack.stop()
    for result in results:
        print(f"{result['model']} (version {','.join(map(str, result['versions']))}): "
              f"{result['accuracy']:.4f} of {result['snippets']} snippets")
    results_file.save(args.out, results)
    return 0


def render(results: list[dict]) -> str:
    """The sentence docs/benchmarks.md gives: each model's accuracy over the snippets."""
    return ("The rt-polarity snippets through the HTTP API: "
            + ", ".join(f"{MODEL_TITLES[r['model']]} {r['accuracy']:.4f}" for r in results)
            + f" of {results[0]['snippets']:,} snippets.")


if __name__ == "__main__":
    sys.exit(main())
