"""The model card's figures (docs/model-card.md): what the exported models do, by kind of text.

    python -m benchmarks.model_card --models-dir models --data ../shared/data/aclImdb_v1_labeled.tar.gz \\
        --snippets ../shared/data/rt-polarity_v1.0.tar.gz --out docs/results/model-card.json

For the latest exported version of each served model, in this process: the version's own
tokenizer contract (text_contract) turns texts into token ids, and its serving signature
(``tf.saved_model.load``) scores them in batches of similar lengths. Evaluated: the 25,000
IMDB test reviews, the same reviews cut to their first words, the 10,662 rt-polarity
snippets (evaluation data only), and short texts written for the known failure modes.
Figures: accuracy by length and by out-of-vocabulary share, calibration (reliability bins
and expected calibration error), the reviews cut to their last 500 words against their
first 500, and each failure-mode text's probability. The tables are rendered by the
functions in ``TABLES``, keyed by their marker name in docs/model-card.md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import results as results_file
from benchmarks.stack import latest_version
from harness.processes import IMDB_TARBALL, RT_POLARITY_TARBALL
from serving.gateway.labels import POSITIVE_THRESHOLD
from text_contract.layout import SERVED_MODELS
from text_contract.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from text_contract.tokenizer import Tokenizer, TokenizerContract, split_words
from training.dataset import OFFICIAL, Split, load_imdb
from training.download import fetch
from training.snippets import Snippets, load_snippets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH_ROWS = 128  # the largest batch the signature runs in one block (training/signature.py)
# Words in the text (the tokenizer's split): (fewest, most), None = no upper bound.
LENGTH_BINS: tuple[tuple[int, int | None], ...] = (
    (1, 10), (11, 20), (21, 50), (51, 100), (101, 200), (201, 499), (500, None))
# Share of a text's words outside the vocabulary: (above, at most); the first bin is exactly 0.
OOV_BINS: tuple[tuple[float, float], ...] = ((-1.0, 0.0), (0.0, 0.05), (0.05, 0.10), (0.10, 0.20), (0.20, 1.0))
FIRST_WORDS = (10, 20, 50, 100)

# Short texts for the known failure modes: (mode, text, what a reader would call it).
NEGATION_ADJECTIVES = {
    "positive": ("good", "great", "funny", "wonderful", "enjoyable", "brilliant", "interesting", "beautiful"),
    "negative": ("bad", "boring", "awful", "terrible", "dull", "stupid", "disappointing", "predictable"),
}
EXAMPLES: tuple[tuple[str, str, str], ...] = (
    ("negation", "This movie is not good.", "negative"),
    ("negation", "Not bad at all, I enjoyed it.", "positive"),
    ("negation", "I would not call it a masterpiece, but I liked it.", "positive"),
    ("sarcasm", "Oh great, another two hours of my life I will never get back.", "negative"),
    ("sarcasm", "What a masterpiece: I only checked my watch ten times.", "negative"),
    ("mixed", "The acting was wonderful but the plot made no sense at all.", "mixed"),
    ("mixed", "Awful first hour, yet the ending was brilliant and moving.", "mixed"),
    ("non-English", "Un film magnifique, je l'ai adoré du début à la fin.", "positive"),
    ("non-English", "Ein langweiliger Film, die Schauspieler waren schrecklich.", "negative"),
    ("non-English", "Una película terrible, aburrida y demasiado larga.", "negative"),
    ("very short", "Great.", "positive"),
    ("very short", "Awful.", "negative"),
    ("very short", "Meh.", "negative"),
    ("very short", "Loved it!", "positive"),
    ("no known words", "👍👍👍", "positive"),
)


@dataclass(frozen=True)
class Scored:
    """Each text's positive probability, label (1 positive), word count and unknown words."""

    probabilities: np.ndarray
    labels: np.ndarray
    words: np.ndarray
    oov: np.ndarray

    def correct(self) -> np.ndarray:
        return (self.probabilities >= POSITIVE_THRESHOLD) == (self.labels == 1)


class ServedModel:
    """One exported version: its serving signature and its tokenizer contract."""

    def __init__(self, version_dir: Path) -> None:
        import tensorflow as tf

        self._tf = tf
        self._signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE_NAME]
        self.tokenizer = Tokenizer(TokenizerContract.read(version_dir))

    def score(self, texts: Sequence[str], labels: Sequence[int]) -> Scored:
        """Every text scored, in batches of rows of similar length (the signature runs only the real tokens)."""
        matrix, encoded = self.tokenizer.encode_batch(texts)
        words = np.array([item.num_tokens for item in encoded])
        order = np.argsort(words, kind="stable")
        probabilities = np.empty(len(texts), np.float32)
        for start in range(0, len(texts), BATCH_ROWS):
            rows = order[start:start + BATCH_ROWS]
            output = self._signature(**{INPUT_NAME: self._tf.constant(matrix[rows])})[OUTPUT_NAME]
            probabilities[rows] = output.numpy().reshape(-1)
        return Scored(probabilities, np.asarray(labels), words, np.array([item.num_oov for item in encoded]))


def imdb_source(path: Path | None) -> Path:
    """The dataset tarball or folder given, else the official tarball (downloaded once, checksummed)."""
    return path if path is not None else fetch(OFFICIAL)


def share_correct(scored: Scored, inside: np.ndarray) -> dict:
    count = int(inside.sum())
    return {"count": count, "accuracy": float(scored.correct()[inside].mean()) if count else None}


def by_length(scored: Scored) -> list[dict]:
    return [{"words": [low, high], **share_correct(
        scored, (scored.words >= low) & (scored.words <= (high if high is not None else np.inf)))}
        for low, high in LENGTH_BINS]


def by_oov_share(scored: Scored) -> list[dict]:
    share = scored.oov / np.maximum(scored.words, 1)
    return [{"oov_share": [max(above, 0.0), most], **share_correct(scored, (share > above) & (share <= most))}
            for above, most in OOV_BINS]


def summary(scored: Scored) -> dict:
    from training.report import calibration  # here: training.report loads TensorFlow, the tables need none

    return {
        **share_correct(scored, np.ones(len(scored.labels), bool)),
        "median_words": float(np.median(scored.words)),
        "no_known_words": int((scored.oov == scored.words).sum()),
        "calibration": calibration(scored.probabilities, scored.labels.astype(np.float32)),
        "by_length": by_length(scored),
        "by_oov_share": by_oov_share(scored),
    }


def truncation(model: ServedModel, texts: list[str], labels: list[int], scored: Scored) -> dict:
    """Reviews longer than the model's input: as served (their last words) against their first words."""
    cut = list(np.flatnonzero(scored.words >= model.tokenizer.maxlen))
    kept = model.tokenizer.maxlen - 1  # the start id takes one of the ids of a review that fits
    first = model.score([" ".join(split_words(texts[i])[:kept]) for i in cut], [labels[i] for i in cut])
    served = scored.correct()[cut]
    return {"count": len(cut), "maxlen": model.tokenizer.maxlen, "first_words_kept": kept,
            "accuracy_last_words": float(served.mean()) if cut else None,
            "accuracy_first_words": float(first.correct().mean()) if cut else None}


def negation(model: ServedModel) -> dict:
    """``The film was X.`` against ``The film was not X.`` for adjectives of either polarity."""
    rows = []
    for polarity, adjectives in NEGATION_ADJECTIVES.items():
        label = int(polarity == "positive")
        plain = model.score([f"The film was {word}." for word in adjectives], [label] * len(adjectives))
        negated = model.score([f"The film was not {word}." for word in adjectives], [1 - label] * len(adjectives))
        rows.append({"adjectives": polarity, "count": len(adjectives),
                     "plain_correct": int(plain.correct().sum()), "negated_correct": int(negated.correct().sum()),
                     "label_flipped": int(((plain.probabilities >= POSITIVE_THRESHOLD)
                                           != (negated.probabilities >= POSITIVE_THRESHOLD)).sum())})
    return {"template": "The film was [not] X.", "rows": rows}


def examples(model: ServedModel) -> list[dict]:
    scored = model.score([text for _, text, _ in EXAMPLES], [int(label == "positive") for *_, label in EXAMPLES])
    return [{"mode": mode, "text": text, "expected": expected, "positive_probability": float(probability),
             "words": int(words), "oov": int(oov)}
            for (mode, text, expected), probability, words, oov
            in zip(EXAMPLES, scored.probabilities, scored.words, scored.oov)]


def training_facts(models_dir: Path, name: str, version: int) -> dict | None:
    """What the trainer recorded beside the export (training/report.py), when it is there."""
    path = models_dir / "reports" / name / str(version) / "metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return {"train_reviews": metrics["reviews"]["train"], "validation_reviews": metrics["reviews"]["validation"],
            "epochs": metrics["config"]["epochs"], "exported_epochs": metrics["exported_epochs"],
            "test_reviews": metrics["reviews"]["test"], "test_accuracy": metrics["test"]["accuracy"]}


def first_words(model: ServedModel, imdb_test: Split) -> list[dict]:
    """The test reviews cut to their first few words: the same reviews, as short as users' texts often are."""
    rows = []
    for count in FIRST_WORDS:
        scored = model.score([" ".join(split_words(text)[:count]) for text in imdb_test.texts], imdb_test.labels)
        rows.append({"first_words": count, **share_correct(scored, np.ones(len(scored.labels), bool))})
    return rows


def evaluate(models_dir: Path, imdb_test: Split, snippets: Snippets) -> list[dict]:
    results = []
    for public, name in SERVED_MODELS.items():
        version_dir = latest_version(models_dir, name)
        print(f"== {public}: {version_dir}", flush=True)
        model = ServedModel(version_dir)
        imdb = model.score(imdb_test.texts, imdb_test.labels)
        results.append({
            "model": public, "model_name": name, "version": int(version_dir.name),
            "vocabulary_words": model.tokenizer.contract.num_words, "maxlen": model.tokenizer.maxlen,
            "training": training_facts(models_dir, name, int(version_dir.name)),
            "imdb_test": summary(imdb),
            "snippets": summary(model.score(snippets.texts, snippets.labels)),
            "imdb_first_words": first_words(model, imdb_test),
            "truncation": truncation(model, imdb_test.texts, imdb_test.labels, imdb),
            "negation": negation(model),
            "examples": examples(model),
        })
    return results


# -- tables ----------------------------------------------------------------------------------

def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _words(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else f"{low}-{high}"


def _header(results: list[dict], first: str, per_model: Sequence[str]) -> list[str]:
    cells = [f"{r['model']}: {column}" for r in results for column in per_model]
    return [f"| {first} | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells)]


def render_overview(results: list[dict]) -> str:
    lines = ["| model | version | trained on | epochs | vocabulary | input |", "|---|---|---|---|---|---|"]
    for r in results:
        training = r["training"] or {}
        trained_on = f"{training['train_reviews']:,} reviews" if training else "-"
        lines.append(f"| {r['model']} | {r['version']} | {trained_on} | {training.get('epochs', '-')} "
                     f"| {r['vocabulary_words']:,} ids | last {r['maxlen']} ids |")
    return "\n".join(lines)


def render_accuracy(results: list[dict]) -> str:
    lines = _header(results, "texts | n | median words", ("accuracy", "ECE", "no known word"))
    lines[1] = "|---|---|---|" + "---|" * (3 * len(results))
    for source, name in (("imdb_test", "IMDB test reviews"), ("snippets", "rt-polarity snippets")):
        first = results[0][source]
        cells = [f"{_share(r[source]['accuracy'])} | {_share(r[source]['calibration']['expected_calibration_error'])} "
                 f"| {r[source]['no_known_words']:,}" for r in results]
        lines.append(f"| {name} | {first['count']:,} | {first['median_words']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _binned(results: list[dict], key: str, label: Callable[[dict], str]) -> str:
    lines = _header(results, "texts", ("n", "accuracy"))
    for source, name in (("imdb_test", "IMDB test"), ("snippets", "snippets")):
        for index, row in enumerate(results[0][source][key]):
            if not any(r[source][key][index]["count"] for r in results):
                continue
            cells = [f"{r[source][key][index]['count']:,} | {_share(r[source][key][index]['accuracy'])}"
                     for r in results]
            lines.append(f"| {name}, {label(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_by_length(results: list[dict]) -> str:
    return _binned(results, "by_length", lambda row: f"{_words(*row['words'])} words")


def render_by_oov_share(results: list[dict]) -> str:
    def label(row: dict) -> str:
        above, most = row["oov_share"]
        return "no unknown word" if most == 0 else f"over {above:.0%} to {most:.0%} unknown"
    return _binned(results, "by_oov_share", label)


def render_first_words(results: list[dict]) -> str:
    lines = _header(results, "IMDB test reviews cut to their first", ("accuracy",))
    for index, row in enumerate(results[0]["imdb_first_words"]):
        cells = [_share(r["imdb_first_words"][index]["accuracy"]) for r in results]
        lines.append(f"| {row['first_words']} words | " + " | ".join(cells) + " |")
    lines.append("| all their words (as served) | " + " | ".join(_share(r["imdb_test"]["accuracy"]) for r in results)
                 + " |")
    return "\n".join(lines)


def render_calibration(results: list[dict]) -> str:
    lines = _header(results, "predicted probability", ("IMDB n", "mean predicted", "share positive"))
    for index, row in enumerate(results[0]["imdb_test"]["calibration"]["bins"]):
        cells = []
        for r in results:
            bin_ = r["imdb_test"]["calibration"]["bins"][index]
            cells.append(f"{bin_['count']:,} | {_share(bin_['mean_probability'])} | {_share(bin_['positive_rate'])}")
        lines.append(f"| {row['low']:.1f}-{row['high']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_truncation(results: list[dict]) -> str:
    lines = ["| model | IMDB test reviews of 500+ words | accuracy, last 500 words (as served) "
             "| accuracy, first 499 words |", "|---|---|---|---|"]
    for r in results:
        t = r["truncation"]
        lines.append(f"| {r['model']} | {t['count']:,} | {_share(t['accuracy_last_words'])} "
                     f"| {_share(t['accuracy_first_words'])} |")
    return "\n".join(lines)


def render_negation(results: list[dict]) -> str:
    lines = ["| model | adjectives | \"The film was X.\" right | \"The film was not X.\" right | label flipped by \"not\" |",
             "|---|---|---|---|---|"]
    for r in results:
        for row in r["negation"]["rows"]:
            n = row["count"]
            lines.append(f"| {r['model']} | {n} {row['adjectives']} | {row['plain_correct']} of {n} "
                         f"| {row['negated_correct']} of {n} | {row['label_flipped']} of {n} |")
    return "\n".join(lines)


def render_examples(results: list[dict]) -> str:
    lines = _header(results, "failure mode | text | a reader says | unknown words", ("P(positive)",))
    lines[1] = "|---|---|---|---|" + "---|" * len(results)
    for index, row in enumerate(results[0]["examples"]):
        unknown = {f"{r['examples'][index]['oov']} of {r['examples'][index]['words']}" for r in results}
        cells = [f"{r['examples'][index]['positive_probability']:.2f}" for r in results]
        lines.append(f"| {row['mode']} | {row['text']} | {row['expected']} | {' / '.join(sorted(unknown))} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


# Marker name in docs/model-card.md -> the function that renders its table.
TABLES: dict[str, Callable[[list[dict]], str]] = {
    "model-card-overview": render_overview,
    "model-card-accuracy": render_accuracy,
    "model-card-length": render_by_length,
    "model-card-first-words": render_first_words,
    "model-card-oov": render_by_oov_share,
    "model-card-calibration": render_calibration,
    "model-card-truncation": render_truncation,
    "model-card-negation": render_negation,
    "model-card-examples": render_examples,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_card", description=__doc__.split("\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=IMDB_TARBALL if IMDB_TARBALL.exists() else None,
                        help="IMDB tarball or folder [default: ../shared copy, else the official download]")
    parser.add_argument("--snippets", type=Path, default=RT_POLARITY_TARBALL if RT_POLARITY_TARBALL.exists() else None,
                        help="rt-polarity tarball or folder [default: ../shared copy, else the official download]")
    parser.add_argument("--out", type=Path, default=results_file.default_path("model-card.json"))
    args = parser.parse_args(argv)

    imdb_test = load_imdb(imdb_source(args.data)).test
    snippets = load_snippets(args.snippets)
    results = evaluate(args.models_dir.resolve(), imdb_test, snippets)
    for name, render in TABLES.items():
        print(f"\n<!-- results: {name} -->\n{render(results)}")
    results_file.save(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
