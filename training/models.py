"""The recurrent sentiment classifiers: Embedding -> recurrent layer -> Dense(1, sigmoid)."""

from __future__ import annotations

from collections.abc import Callable

import keras

from text_contract.layout import MODEL_NAME_PREFIX
from text_contract.signature import INPUT_NAME

EMBEDDING_DIM = 32
RECURRENT_UNITS = 32

_RECURRENT_LAYERS: dict[str, Callable[[], keras.layers.Layer]] = {
    "simple_rnn": lambda: keras.layers.SimpleRNN(RECURRENT_UNITS, name="simple_rnn"),
    "lstm": lambda: keras.layers.LSTM(RECURRENT_UNITS, name="lstm"),
    "gru": lambda: keras.layers.GRU(RECURRENT_UNITS, name="gru"),
    "bilstm": lambda: keras.layers.Bidirectional(keras.layers.LSTM(RECURRENT_UNITS), name="bilstm"),
}
ARCHITECTURES = tuple(_RECURRENT_LAYERS)


def build_model(architecture: str, num_words: int, maxlen: int) -> keras.Model:
    """An uncompiled classifier over ``[batch, maxlen]`` int token ids."""
    if architecture not in _RECURRENT_LAYERS:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")
    return keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32", name=INPUT_NAME),
            keras.layers.Embedding(num_words, EMBEDDING_DIM, name="embedding"),
            _RECURRENT_LAYERS[architecture](),
            keras.layers.Dense(1, activation="sigmoid", name="positive_probability"),
        ],
        name=f"{MODEL_NAME_PREFIX}{architecture}",
    )


def compile_model(model: keras.Model, optimizer: str) -> None:
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
