"""The per-run report written beside the export: metrics JSON and the two curves."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from training.train import TrainingConfig, TrainingResult

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def write_report(
    directory: Path, model_name: str, version: int, result: TrainingResult, config: TrainingConfig
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    metrics = {
        "model_name": model_name,
        "version": version,
        "architecture": result.model.name,
        "parameters": int(result.model.count_params()),
        "epochs": [
            {name: values[i] for name, values in result.history.items()}
            | {"epoch": i + 1}
            for i in range(len(result.history.get("loss", [])))
        ],
        "best_epoch": result.best_epoch,
        "monitor": config.monitor,
        "test": {"loss": result.test_loss, "accuracy": result.test_accuracy},
        "reviews": {
            "train": result.train_reviews,
            "validation": result.validation_reviews,
            "test": result.test_reviews,
        },
        "duration_seconds": round(result.seconds, 2),
        "config": vars(config),
        "library_versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }
    # The Keras model too, for in-process comparisons with what the server returns.
    result.model.save(directory / "model.keras")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    _plot(directory / "accuracy.png", result, "accuracy", "Training and validation accuracy")
    _plot(directory / "loss.png", result, "loss", "Training and validation loss")
    return directory


def _plot(path: Path, result: TrainingResult, metric: str, title: str) -> None:
    epochs = range(1, len(result.history[metric]) + 1)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(epochs, result.history[metric], "bo", label=f"Training {metric}")
    axes.plot(epochs, result.history[f"val_{metric}"], "b", label=f"Validation {metric}")
    axes.axvline(result.best_epoch, color="grey", linestyle=":", label="Kept epoch")
    axes.set_title(f"{result.model.name}: {title}")
    axes.set_xlabel("Epoch")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
