"""The recurrent sentiment classifiers: Embedding -> recurrent layer -> Dense(1, sigmoid).

The embedding masks the padding id, so the recurrent layer carries its state
unchanged through padding: a review's output does not depend on how many padding
columns precede it. That is what lets training and serving run only the columns
that hold real tokens (``training.batches``, ``training.signature``).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from text_contract.layout import MODEL_NAME_PREFIX
from text_contract.signature import INPUT_NAME

EMBEDDING_DIM = 32
RECURRENT_UNITS = 32
ARCHITECTURES = ("simple_rnn", "lstm", "gru", "bilstm")


@dataclass(frozen=True)
class Regularisation:
    """Knobs that change training only; the exported computation is the same. The defaults
    are the shipped ones (docs/accuracy.md has the ablation that chose them)."""

    mask_padding: bool = True
    embedding_dropout: float = 0.3  # drops whole word vectors (SpatialDropout1D)
    input_dropout: float = 0.0  # the recurrent layer's ``dropout``
    recurrent_dropout: float = 0.0


def _recurrent_layer(architecture: str, regularisation: Regularisation) -> keras.layers.Layer:
    options = dict(dropout=regularisation.input_dropout, recurrent_dropout=regularisation.recurrent_dropout)
    if architecture == "simple_rnn":
        return keras.layers.SimpleRNN(RECURRENT_UNITS, name="simple_rnn", **options)
    if architecture == "lstm":
        return keras.layers.LSTM(RECURRENT_UNITS, name="lstm", **options)
    if architecture == "gru":
        return keras.layers.GRU(RECURRENT_UNITS, name="gru", **options)
    if architecture == "bilstm":
        return keras.layers.Bidirectional(keras.layers.LSTM(RECURRENT_UNITS, **options), name="bilstm")
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")


def build_model(
    architecture: str, num_words: int, regularisation: Regularisation = Regularisation()
) -> keras.Model:
    """An uncompiled classifier over ``[batch, length]`` int token ids, pre-padded with 0.

    The length is free: training feeds batches trimmed to their real tokens, and
    the export fixes it to the tokenizer contract's maxlen.
    """
    layers = [
        keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME),
        keras.layers.Embedding(num_words, EMBEDDING_DIM, mask_zero=regularisation.mask_padding, name="embedding"),
    ]
    if regularisation.embedding_dropout:
        layers.append(keras.layers.SpatialDropout1D(regularisation.embedding_dropout, name="embedding_dropout"))
    layers += [
        _recurrent_layer(architecture, regularisation),
        keras.layers.Dense(1, activation="sigmoid", name="positive_probability"),
    ]
    return keras.Sequential(layers, name=f"{MODEL_NAME_PREFIX}{architecture}")
