"""The exported version and the project's tokenizer, as each peer serves them.

Imported by the peers' servers inside their own virtual environments: it needs only
TensorFlow, NumPy and `text_contract` (on the path from the repository root).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

from text_contract.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from text_contract.tokenizer import Tokenizer, TokenizerContract

POSITIVE_THRESHOLD = 0.5  # the gateway's (serving/gateway/labels.py), not imported: no gateway here


class ReviewModel:
    """Texts in, one probability and label per text out: the exported serving signature."""

    def __init__(self, version_dir: Path) -> None:
        self._signature = tf.saved_model.load(str(version_dir)).signatures[SIGNATURE_NAME]
        self._tokenizer = Tokenizer(TokenizerContract.read(version_dir))

    def score(self, texts: Sequence[str]) -> list[dict]:
        ids, _ = self._tokenizer.encode_batch(texts)
        probabilities = self._signature(**{INPUT_NAME: tf.constant(ids)})[OUTPUT_NAME].numpy().reshape(-1)
        return [
            {"probability": float(p), "label": "positive" if p >= POSITIVE_THRESHOLD else "negative"}
            for p in probabilities
        ]
