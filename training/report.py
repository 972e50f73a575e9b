"""The per-run report written beside the export: metrics JSON, curves and calibration."""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from training.train import Evaluation, TrainingConfig, TrainingResult

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

CALIBRATION_BINS = 10


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability per equal-width probability bin and the expected calibration error (ECE).

    ECE = sum over bins of (share of reviews in the bin) x |positive rate - mean probability|.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probabilities, edges[1:-1]), 0, bins - 1)
    rows = []
    error = 0.0
    for index in range(bins):
        inside = which == index
        count = int(inside.sum())
        if count:
            mean_probability = float(probabilities[inside].mean())
            positive_rate = float(labels[inside].mean())
            error += count / len(probabilities) * abs(positive_rate - mean_probability)
        else:
            mean_probability = positive_rate = None
        rows.append({"low": float(edges[index]), "high": float(edges[index + 1]), "count": count,
                     "mean_probability": mean_probability, "positive_rate": positive_rate})
    return {"expected_calibration_error": error, "bins": rows}


def write_report(
    directory: Path,
    model_name: str,
    version: int,
    result: TrainingResult,
    config: TrainingConfig,
    snippets: Evaluation | None = None,
    test_labels: np.ndarray | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exported = result.averaged_epochs or [result.best_epoch]
    metrics = {
        "model_name": model_name,
        "version": version,
        "architecture": result.model.name,
        "parameters": int(result.model.count_params()),
        "epochs": [
            {name: values[i] for name, values in result.history.items()} | {"epoch": i + 1}
            for i in range(len(result.history.get("loss", [])))
        ],
        "best_epoch": result.best_epoch,
        "exported_epochs": exported,
        "weights": "average of epochs" if result.averaged_epochs else "best epoch",
        "monitor": config.monitor,
        "validation": _scores(result.validation),
        "test": _scores(result.test),
        "snippets": _scores(snippets) if snippets else None,
        "reviews": {
            "train": result.train_reviews,
            "validation": len(result.validation.probabilities),
            "test": len(result.test.probabilities),
            "snippets": len(snippets.probabilities) if snippets else 0,
        },
        "duration_seconds": round(result.seconds, 2),
        "config": dataclasses.asdict(config),
        "library_versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }
    if test_labels is not None:
        metrics["test"]["calibration"] = calibration(result.test.probabilities, test_labels)
        _plot_reliability(directory / "reliability.png", result.model.name, metrics["test"]["calibration"])
    # The Keras model too, for in-process comparisons with what the server returns.
    result.model.save(directory / "model.keras")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    _plot(directory / "accuracy.png", result, exported, "accuracy", "Training and validation accuracy")
    _plot(directory / "loss.png", result, exported, "loss", "Training and validation loss")
    return directory


def _scores(evaluation: Evaluation) -> dict:
    return {"loss": evaluation.loss, "accuracy": evaluation.accuracy}


def _plot(path: Path, result: TrainingResult, exported: list[int], metric: str, title: str) -> None:
    epochs = range(1, len(result.history[metric]) + 1)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(epochs, result.history[metric], "bo-", label=f"Training {metric}")
    axes.plot(epochs, result.history[f"val_{metric}"], "rs-", label=f"Validation {metric}")
    for index, epoch in enumerate(exported):
        label = ("Averaged epochs" if len(exported) > 1 else "Exported epoch") if index == 0 else None
        axes.axvline(epoch, color="grey", linestyle=":", label=label)
    axes.set_title(f"{result.model.name}: {title}")
    axes.set_xlabel("Epoch")
    axes.set_xticks(list(epochs))
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_reliability(path: Path, name: str, table: dict) -> None:
    filled = [row for row in table["bins"] if row["count"]]
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="Perfect calibration")
    axes.plot([row["mean_probability"] for row in filled], [row["positive_rate"] for row in filled], "bo-",
              label="Model")
    axes.bar([row["low"] for row in table["bins"]], [row["count"] / sum(r["count"] for r in table["bins"])
                                                    for row in table["bins"]],
             width=1 / len(table["bins"]), align="edge", alpha=0.2, color="grey", label="Share of reviews")
    axes.set_title(f"{name}: reliability on the test set (ECE {table['expected_calibration_error']:.3f})")
    axes.set_xlabel("Predicted positive probability")
    axes.set_ylabel("Positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
