"""Training batches of similar length, trimmed to their real tokens.

Reviews are pre-padded to ``maxlen`` and the models mask the padding, so the
leading columns that are padding in every row of a batch change nothing and are
cut off: a batch costs what its longest review costs, not ``maxlen`` steps.
Batches are drawn from length-sorted pools so that few columns are wasted; the
trimmed length is rounded up to the serving signature's length buckets, which
keeps the number of distinct shapes (each traced and, under XLA, compiled) small.

Optionally a share of each epoch's reviews is replaced by a random window of
their own tokens (``WindowAugmentation``), so short texts, which users send and
full reviews are not, are part of training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from text_contract.tokenizer import PAD_ID, START_ID
from training.signature import bucketed_length

# Reviews sorted by length together: wide enough to fill batches of one length,
# narrow enough that batches of an epoch still differ from those of the next.
POOL_BATCHES = 50


@dataclass(frozen=True)
class WindowAugmentation:
    """Replace ``share`` of the reviews of every epoch by ``min_tokens..max_tokens`` of their words."""

    share: float = 0.5
    min_tokens: int = 5
    max_tokens: int = 60

    def __post_init__(self) -> None:
        if not 0 <= self.share < 1:
            raise ValueError(f"window share must be in [0, 1), got {self.share}")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"window tokens must satisfy 1 <= min <= max, got {self.min_tokens}-{self.max_tokens}")


def real_lengths(ids: np.ndarray) -> np.ndarray:
    """Tokens per row of a pre-padded id matrix (padding is only ever in front)."""
    return np.count_nonzero(ids != PAD_ID, axis=1)


def windows(ids: np.ndarray, rows: np.ndarray, augmentation: WindowAugmentation, rng: np.random.Generator) -> None:
    """Rewrite ``ids[rows]`` in place as the start id followed by a random window of each row's words."""
    maxlen = ids.shape[1]
    for row in rows:
        words = ids[row][ids[row] != PAD_ID]
        if words.size and words[0] == START_ID:
            words = words[1:]
        if words.size <= augmentation.min_tokens:
            continue
        size = int(rng.integers(augmentation.min_tokens, min(augmentation.max_tokens, words.size) + 1))
        start = int(rng.integers(0, words.size - size + 1))
        ids[row] = PAD_ID
        ids[row, maxlen - size - 1] = START_ID
        ids[row, maxlen - size:] = words[start:start + size]


class LengthBucketedBatches:
    """Batches of ``(ids[:, -L:], labels)`` with ``L`` the batch's bucketed real length.

    ``trim=False`` keeps all columns (models that do not mask padding).
    """

    def __init__(
        self,
        ids: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        *,
        shuffle: bool = True,
        trim: bool = True,
        augmentation: WindowAugmentation | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be positive")
        self._source = ids
        self._labels = labels
        self._batch_size = batch_size
        self._trim = trim
        self._shuffle = shuffle
        self._augmentation = augmentation
        self._rng = np.random.default_rng(seed)
        self._plan_epoch()

    def _plan_epoch(self) -> None:
        count = len(self._source)
        self._ids = self._source
        if self._augmentation and self._augmentation.share:
            self._ids = self._source.copy()
            chosen = self._rng.choice(count, size=int(round(count * self._augmentation.share)), replace=False)
            windows(self._ids, chosen, self._augmentation, self._rng)
        lengths = real_lengths(self._ids)
        order = self._rng.permutation(count) if self._shuffle else np.arange(count)
        pool = self._batch_size * POOL_BATCHES
        batches: list[np.ndarray] = []
        for start in range(0, count, pool):
            chunk = order[start:start + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self._batch_size] for i in range(0, len(chunk), self._batch_size)]
        if self._shuffle:
            batches = [batches[i] for i in self._rng.permutation(len(batches))]
        self._batches = batches
        self._lengths = lengths

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._batches[index]
        maxlen = self._ids.shape[1]
        length = bucketed_length(int(self._lengths[rows].max()), maxlen) if self._trim else maxlen
        return self._ids[rows, maxlen - length:], self._labels[rows]

    def rows(self, index: int) -> np.ndarray:
        """The input rows that batch ``index`` holds, in batch order."""
        return self._batches[index]

    def dataset(self) -> tf.data.Dataset:
        """The batches as a tf.data pipeline for ``model.fit``: every pass is one epoch, planned anew.

        The length dimension is declared free, so each batch keeps its own trimmed length.
        """
        return tf.data.Dataset.from_generator(
            self._epoch,
            output_signature=(tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.float32)),
        ).prefetch(2)

    def _epoch(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for index in range(len(self)):
            yield self[index]
        if self._shuffle:
            self._plan_epoch()
