"""The model's own cost: the raw signature and the stack, before and after trimming + XLA.

    python -m benchmarks.model_cost --models-dir models

1. Raw signature, in this process, on the same trained weights (the report's
   ``model.keras``): CPU per row and reviews/s of the plain computation (all 500
   steps, TensorFlow's graph, the export before this change), the same compiled by
   XLA, trimmed without XLA (``--no-xla`` exports) and trimmed + XLA (the shipped
   export), at batch 1/8/64/128, for three length profiles: IMDB test reviews as
   they are, the same cut to their first 20 words, and the rt-polarity snippets.
2. End to end, the model server + gateway serving the plain export and then the
   shipped one: HTTP (hey) and gRPC at 1 and 64 clients, one text per request, one
   representative text per profile (the median-length one), with the CPU per
   request split between the gateway, the model server's Python and TensorFlow
   (TensorFlow's part estimated from part 1 at the batch sizes the model server ran).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import results as results_file
from benchmarks.__main__ import batched, bench_grpc, bench_hey
from benchmarks.stack import Stack, latest_version
from benchmarks.tables import table
from harness.processes import IMDB_TARBALL, RT_POLARITY_TARBALL
from text_contract.layout import SERVED_MODELS
from text_contract.tokenizer import Tokenizer, TokenizerContract, split_words

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH_SIZES = (1, 8, 64, 128)
# plain / shipped CPU per row at batch 64 that the compiled, trimmed export was to reach
TARGETS = {("lstm", "IMDB reviews"): 4, ("lstm", "snippets"): 20,
           ("simple_rnn", "IMDB reviews"): 2.5, ("simple_rnn", "snippets"): 15}
TARGET_PROFILES = ("IMDB reviews", "snippets")
VARIANTS = {  # name -> (xla, trim)
    "plain": (False, False),
    "XLA": (True, False),
    "trimmed": (False, True),
    "XLA + trimmed": (True, True),
}
SAMPLE = 1024


def profiles(data: Path, snippets_source: Path | None) -> dict[str, list[str]]:
    from training.dataset import load_imdb
    from training.snippets import load_snippets

    reviews = load_imdb(data).test.sample(SAMPLE, seed=3).texts
    snippets = load_snippets(snippets_source)
    order = np.random.default_rng(3).permutation(len(snippets))[:SAMPLE]
    return {
        "IMDB reviews": reviews,
        "IMDB first 20 words": [" ".join(split_words(text)[:20]) for text in reviews],
        "snippets": [snippets.texts[i] for i in order],
    }


def median_text(texts: list[str]) -> str:
    by_length = sorted(texts, key=lambda text: len(split_words(text)))
    return by_length[len(by_length) // 2]


def cpu_per_row(run: Callable[[np.ndarray], object], ids: np.ndarray, size: int, seconds: float) -> dict:
    """Run consecutive batches of ``size`` rows of ``ids`` for ``seconds``; CPU (all threads) per row."""
    batches = [ids[start:start + size] for start in range(0, len(ids) - size + 1, size)][:64]
    for batch in batches:  # every shape compiled and warm before timing
        run(batch)
    rows = 0
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall_before < seconds:
        for batch in batches:
            run(batch)
            rows += size
    wall = time.perf_counter() - wall_before
    return {"cpu_ms_per_row": round((time.process_time() - cpu_before) * 1000 / rows, 4),
            "reviews_per_s": round(rows / wall, 1)}


def bench_raw_variants(models_dir: Path, texts: dict[str, list[str]], seconds: float) -> list[dict]:
    import keras
    import tensorflow as tf

    from training.signature import input_spec, serving_function

    rows = []
    for model, name in SERVED_MODELS.items():
        version_dir = latest_version(models_dir, name)
        weights = keras.models.load_model(models_dir / "reports" / name / version_dir.name / "model.keras")
        tokenizer = Tokenizer(TokenizerContract.read(version_dir))
        for variant, (xla, trim) in VARIANTS.items():
            function = tf.function(serving_function(weights, tokenizer.maxlen, xla=xla, trim=trim),
                                   input_signature=[input_spec(tokenizer.maxlen)])
            for profile, profile_texts in texts.items():
                ids, _ = tokenizer.encode_batch(profile_texts)
                for size in BATCH_SIZES:
                    print(f"== raw {model}, {variant}, {profile}, batch {size}", flush=True)
                    rows.append({"model": model, "variant": variant, "profile": profile, "batch": size,
                                 **cpu_per_row(lambda batch: function(tf.constant(batch)), ids, size, seconds)})
    return rows


def tensorflow_ms(raw: list[dict], model: str, profile: str, rows_per_batch: float) -> float:
    """TensorFlow's CPU per row of the shipped signature at a mean batch size (log-interpolated)."""
    points = sorted((r["batch"], r["cpu_ms_per_row"]) for r in raw
                    if r["model"] == model and r["profile"] == profile and r["variant"] == "XLA + trimmed")
    sizes, costs = zip(*points)
    return float(np.interp(np.log(max(1.0, rows_per_batch)), np.log(sizes), costs))


def bench_stack(models_dir: Path, texts: dict[str, list[str]], seconds: float, export: str, log_dir: Path) -> list[dict]:
    from serving.client import SentimentClient

    stack = Stack(models_dir, log_dir, http_workers=2)
    rows = []

    def cpu(gateway_role: str) -> Callable[[], dict[str, float]]:
        return lambda: {"model_server": (used := stack.cpu_seconds())["model_server"], "gateway": used[gateway_role]}

    try:
        with SentimentClient(stack.grpc_target) as sentiment:
            for model, name in SERVED_MODELS.items():
                for profile, profile_texts in texts.items():
                    text = median_text(profile_texts)
                    for clients in (1, 64):
                        print(f"== {export}: {model}, {profile}, {clients} clients", flush=True)
                        http = batched(stack, name, lambda: bench_hey(
                            f"{stack.http_url}/v1/sentiment", {"text": text, "model": model}, clients, seconds,
                            "gateway HTTP", model, cpu("gateway")))
                        grpc = batched(stack, name, lambda: bench_grpc(
                            lambda: sentiment.predict([text], model=model), clients, 1, seconds, model,
                            cpu("grpc_gateway")))
                        for row in (http, grpc):
                            rows.append(row | {"export": export, "profile": profile})
    finally:
        stack.stop()
    return rows


def write_export(source: Path, out: Path, xla: bool, trim: bool) -> Path:
    """The same weights as ``source``'s latest versions, exported with another signature into ``out``."""
    import keras

    from training.export import export_version

    for name in SERVED_MODELS.values():
        version_dir = latest_version(source, name)
        weights = keras.models.load_model(source / "reports" / name / version_dir.name / "model.keras")
        export_version(weights, TokenizerContract.read(version_dir), out / name, xla=xla, trim=trim)
    return out


def render_raw(results: dict) -> str:
    """The raw signature's CPU per row, every variant, model, profile and batch size."""
    keyed = {(r["model"], r["profile"], r["batch"], r["variant"]): r["cpu_ms_per_row"] for r in results["raw"]}
    profiles_run = dict.fromkeys(r["profile"] for r in results["raw"])
    rows = []
    for model in SERVED_MODELS:
        for profile in profiles_run:
            for size in BATCH_SIZES:
                cells = [keyed[(model, profile, size, v)] for v in VARIANTS]
                rows.append((model, profile, size, *(f"{c:.3f}" for c in cells), f"{cells[0] / cells[-1]:.1f}x"))
    return table(("model", "profile", "batch", *(f"{v} ms/row" for v in VARIANTS), "plain / shipped"), rows)


def render_targets(results: dict) -> str:
    """plain / shipped CPU per row at batch 64 against the targets the change was set."""
    keyed = {(r["model"], r["profile"], r["batch"], r["variant"]): r["cpu_ms_per_row"] for r in results["raw"]}

    def verdict(model: str, profile: str) -> str:
        ratio = keyed[(model, profile, 64, "plain")] / keyed[(model, profile, 64, "XLA + trimmed")]
        return f"{ratio:.2f}x: {'met' if ratio >= TARGETS[(model, profile)] else 'missed'}"

    return table(("", *TARGET_PROFILES), (
        (f"{model} (target " + " / ".join(f"{TARGETS[(model, p)]:g}x" for p in TARGET_PROFILES) + ")",
         *(verdict(model, profile) for profile in TARGET_PROFILES)) for model in SERVED_MODELS))


def render_stack(results: dict) -> str:
    """End to end, the plain export then the shipped one: one text per request."""
    rows = []
    for r in results["stack"]:
        split, tf_ms = r["cpu_ms_per_request"], r.get("tensorflow_ms")
        rows.append((r["export"], r["model"], r["profile"], "HTTP" if "HTTP" in r["scenario"] else "gRPC",
                     r["clients"], f"{r['requests_per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                     r["rows_per_batch"], f"{split['gateway']:.2f}", f"{split['model_server']:.2f}",
                     "-" if tf_ms is None else f"{tf_ms:.2f}"))
    return table(("export", "model", "profile", "API", "clients", "req/s", "p50 ms", "p99 ms", "rows/batch",
                  "CPU ms/req: gateway", "model server", "of which TensorFlow (est.)"), rows)


def render(results: dict) -> str:
    return render_raw(results) + "\n\n" + render_stack(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL)
    parser.add_argument("--snippets", type=Path, default=RT_POLARITY_TARBALL if RT_POLARITY_TARBALL.exists() else None)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per raw measurement [1.5]")
    parser.add_argument("--stack-duration", type=float, default=5.0, help="seconds per end-to-end scenario [5]")
    parser.add_argument("--skip-stack", action="store_true", help="raw signature only")
    parser.add_argument("--out", type=Path, default=results_file.default_path("model-cost.json"))
    parser.add_argument("--render", action="store_true", help="print the tables of --out, measure nothing")
    args = parser.parse_args(argv)
    if args.render:
        print(render(results_file.load(args.out)))
        return 0
    models_dir = args.models_dir.resolve()
    texts = profiles(args.data, args.snippets)
    raw = bench_raw_variants(models_dir, texts, args.duration)
    stack_rows: list[dict] = []
    if not args.skip_stack:
        work = Path(tempfile.mkdtemp(prefix="model-cost-"))
        plain = write_export(models_dir, work / "plain", xla=False, trim=False)
        stack_rows += bench_stack(plain, texts, args.stack_duration, "plain", work)
        stack_rows += bench_stack(models_dir, texts, args.stack_duration, "shipped", work)
        for row in stack_rows:
            if row["export"] == "shipped":
                row["tensorflow_ms"] = tensorflow_ms(raw, row["model"], row["profile"], row["rows_per_batch"])
    results = {"raw": raw, "stack": stack_rows}
    print(render(results))
    results_file.save(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
