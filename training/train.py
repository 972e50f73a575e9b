"""Fitting one architecture, keeping its best validation epoch(s), testing it once."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from text_contract.tokenizer import Tokenizer
from training.batches import LengthBucketedBatches, WindowAugmentation
from training.dataset import Split
from training.models import Regularisation, build_model

LR_SCHEDULES = ("constant", "cosine")
PREDICT_BATCH_SIZE = 512


@dataclass(frozen=True)
class TrainingConfig:
    """Every training setting; the defaults are ``python -m training``'s."""

    epochs: int = 15  # validation accuracy still rose at epoch 10 with windows and dropout (docs/accuracy.md)
    batch_size: int = 128
    validation_split: float = 0.2
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    monitor: str = "val_accuracy"
    average_best: int = 3  # average the weights of this many best epochs (1 = keep the best)
    regularisation: Regularisation = field(default_factory=Regularisation)
    augmentation: WindowAugmentation = field(default_factory=WindowAugmentation)
    jit_compile: bool = True
    seed: int = 42


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    probabilities: np.ndarray  # [n] positive probability per review, in input order


@dataclass
class TrainingResult:
    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int  # 1-based; the best single epoch by the monitored metric
    averaged_epochs: list[int]  # 1-based epochs whose weights were averaged; [] = best epoch kept
    validation: Evaluation
    test: Evaluation
    train_reviews: int
    seconds: float


# The validation metrics that may pick the kept epochs, and whether higher is better.
MONITORS = {"val_accuracy": True, "val_loss": False}


def higher_is_better(monitor: str) -> bool:
    if monitor not in MONITORS:
        raise ValueError(f"cannot monitor {monitor!r}: expected one of {', '.join(MONITORS)}")
    return MONITORS[monitor]


class KeepBestWeights(keras.callbacks.Callback):
    """Remember the weights of the ``keep`` best epochs by ``monitor``; restore the best at the end."""

    def __init__(self, monitor: str, keep: int = 1) -> None:
        super().__init__()
        self.monitor = monitor
        self.keep = keep
        self._sign = 1.0 if higher_is_better(monitor) else -1.0
        self.kept: list[tuple[float, int, list[np.ndarray]]] = []  # (signed value, 1-based epoch, weights)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"metric {self.monitor!r} is not logged; is there a validation set?")
        self.kept.append((self._sign * float(value), epoch + 1, self.model.get_weights()))
        # Best first; among equal values the earlier epoch.
        self.kept.sort(key=lambda item: (-item[0], item[1]))
        del self.kept[self.keep:]

    @property
    def best_epoch(self) -> int:
        return self.kept[0][1] if self.kept else 0

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.kept:
            self.model.set_weights(self.kept[0][2])

    def average(self) -> list[np.ndarray]:
        return [np.mean(layers, axis=0) for layers in zip(*(weights for _, _, weights in self.kept))]


def evaluate(model: keras.Model, ids: np.ndarray, labels: np.ndarray, trim: bool) -> Evaluation:
    """Loss, accuracy and per-review probabilities, running only each batch's real tokens."""
    batches = LengthBucketedBatches(ids, labels, PREDICT_BATCH_SIZE, seed=0, shuffle=False, trim=trim)
    probabilities = np.empty(len(ids), np.float32)
    for index in range(len(batches)):
        x, _ = batches[index]
        probabilities[batches.rows(index)] = np.asarray(model.predict_on_batch(x)).reshape(-1)
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    accuracy = np.mean((probabilities >= 0.5) == (labels > 0.5))  # the gateway's threshold
    return Evaluation(float(loss), float(accuracy), probabilities)


def _optimizer(config: TrainingConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch)
    options = {"learning_rate": learning_rate}
    if config.weight_decay:
        options["weight_decay"] = config.weight_decay
    return keras.optimizers.get({"class_name": config.optimizer, "config": options})


def train_architecture(
    architecture: str, tokenizer: Tokenizer, train: Split, validation: Split, test: Split, config: TrainingConfig
) -> TrainingResult:
    """Train on ``train``; ``validation`` (held out before the vocabulary was built) picks the epochs."""
    keras.utils.set_random_seed(config.seed)
    started = time.monotonic()
    x_train, y_train = tokenizer.encode_batch(train.texts)[0], np.asarray(train.labels, dtype=np.float32)
    x_val, y_val = tokenizer.encode_batch(validation.texts)[0], np.asarray(validation.labels, dtype=np.float32)
    test_ids, _ = tokenizer.encode_batch(test.texts)
    # Without masking, padding is input like any other token: every batch keeps all columns.
    trim = config.regularisation.mask_padding
    batches = LengthBucketedBatches(
        x_train, y_train, config.batch_size, config.seed, trim=trim, augmentation=config.augmentation
    )
    validation_batches = LengthBucketedBatches(x_val, y_val, PREDICT_BATCH_SIZE, config.seed, shuffle=False, trim=trim)

    model = build_model(architecture, tokenizer.contract.num_words, config.regularisation)
    model.compile(
        optimizer=_optimizer(config, len(batches)),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
    )
    keep_best = KeepBestWeights(config.monitor, config.average_best)
    fit = model.fit(
        batches.dataset(),
        epochs=config.epochs,
        validation_data=validation_batches.dataset(),
        callbacks=[keep_best],
        # A progress bar on a terminal, one line per epoch in logs.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    best_validation = evaluate(model, x_val, y_val, trim)
    averaged_epochs: list[int] = []
    if len(keep_best.kept) > 1:
        model.set_weights(keep_best.average())
        averaged_validation = evaluate(model, x_val, y_val, trim)
        if _at_least_as_good(averaged_validation, best_validation, config.monitor):
            averaged_epochs = sorted(epoch for _, epoch, _ in keep_best.kept)
            best_validation = averaged_validation
        else:
            model.set_weights(keep_best.kept[0][2])
    return TrainingResult(
        model=model,
        history={name: [float(v) for v in values] for name, values in fit.history.items()},
        best_epoch=keep_best.best_epoch,
        averaged_epochs=averaged_epochs,
        validation=best_validation,
        test=evaluate(model, test_ids, np.asarray(test.labels, dtype=np.float32), trim),
        train_reviews=len(x_train),
        seconds=time.monotonic() - started,
    )


def _at_least_as_good(candidate: Evaluation, incumbent: Evaluation, monitor: str) -> bool:
    """Compare on validation only: accuracy or loss, as the monitored metric says."""
    if higher_is_better(monitor):
        return candidate.accuracy >= incumbent.accuracy
    return candidate.loss <= incumbent.loss
