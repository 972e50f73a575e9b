"""Fitting one architecture, keeping its best validation epoch, testing it once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np

from text_contract.tokenizer import Tokenizer
from training.dataset import Split
from training.models import build_model, compile_model


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 128
    validation_split: float = 0.2
    optimizer: str = "rmsprop"
    monitor: str = "val_accuracy"
    seed: int = 42


@dataclass
class TrainingResult:
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    test_loss: float
    test_accuracy: float
    train_reviews: int
    validation_reviews: int
    test_reviews: int
    seconds: float


class KeepBestWeights(keras.callbacks.Callback):
    """Remember the weights of the best epoch by ``monitor`` and restore them at the end."""

    def __init__(self, monitor: str) -> None:
        super().__init__()
        self.monitor = monitor
        self.higher_is_better = "acc" in monitor
        self.best_value: float | None = None
        self.best_epoch = 0
        self._best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"metric {self.monitor!r} is not logged; is there a validation set?")
        improved = self.best_value is None or (
            value > self.best_value if self.higher_is_better else value < self.best_value
        )
        if improved:
            self.best_value, self.best_epoch = float(value), epoch + 1
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def split_validation(
    ids: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A seeded shuffle, then the last ``fraction`` of reviews held out for validation."""
    order = np.random.default_rng(seed).permutation(len(ids))
    held_out = max(1, int(round(len(ids) * fraction)))
    train_idx, val_idx = order[:-held_out], order[-held_out:]
    return (ids[train_idx], labels[train_idx]), (ids[val_idx], labels[val_idx])


def train_architecture(
    architecture: str, tokenizer: Tokenizer, train: Split, test: Split, config: TrainingConfig
) -> TrainingResult:
    keras.utils.set_random_seed(config.seed)
    started = time.monotonic()
    train_ids, _ = tokenizer.encode_batch(train.texts)
    test_ids, _ = tokenizer.encode_batch(test.texts)
    train_labels = np.asarray(train.labels, dtype=np.float32)
    (x_train, y_train), (x_val, y_val) = split_validation(
        train_ids, train_labels, config.validation_split, config.seed
    )

    model = build_model(architecture, tokenizer.contract.num_words, tokenizer.maxlen)
    compile_model(model, config.optimizer)
    keep_best = KeepBestWeights(config.monitor)
    fit = model.fit(
        x_train,
        y_train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=(x_val, y_val),
        callbacks=[keep_best],
        verbose=2,
    )
    test_loss, test_accuracy = model.evaluate(
        test_ids, np.asarray(test.labels, dtype=np.float32), batch_size=512, verbose=0
    )
    return TrainingResult(
        model=model,
        history={name: [float(v) for v in values] for name, values in fit.history.items()},
        best_epoch=keep_best.best_epoch,
        test_loss=float(test_loss),
        test_accuracy=float(test_accuracy),
        train_reviews=len(x_train),
        validation_reviews=len(x_val),
        test_reviews=len(test_ids),
        seconds=time.monotonic() - started,
    )
