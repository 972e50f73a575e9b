"""The exported ``serving_default`` computation: only the real tokens, compiled by XLA.

The contract stays ``tokens`` int32 ``[-1, maxlen]``, pre-padded with 0, in and
``positive_probability`` float32 ``[-1, 1]`` out. Inside, the signature

* drops the leading columns that are padding in every row (the models mask
  padding, so those columns change nothing) and rounds the remaining length up
  to the next of ``LENGTH_BUCKETS`` (or maxlen);
* pads the batch up to the next of ``BATCH_BUCKETS`` rows (larger batches run in
  chunks of the largest bucket);
* runs the Keras model on that ``[batch bucket, length bucket]`` block in a
  function compiled by XLA (``jit_compile``).

So XLA meets at most ``len(BATCH_BUCKETS) * len(length_buckets(maxlen))`` shapes
(30 for maxlen 500), each compiled once per process; the warmup file (``training.warmup``) holds one
request per shape so that the model server compiles them all while loading.
TF Serving runs such a function only with ``--xla_cpu_compilation_enabled=true``.
Without XLA (``xla=False``) the same trimming runs on the exact real length.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from text_contract.signature import INPUT_NAME, OUTPUT_NAME
from text_contract.tokenizer import PAD_ID

# TF Serving's batching file caps batches at 128 rows. A batch of 64, the size the
# benchmarks and full batchers meet most, gets its own block: padded to 128 it cost
# 1.6x (0.60 vs 0.37 ms per IMDB review, LSTM).
BATCH_BUCKETS = (1, 8, 32, 64, 128)
# Fine where short texts are (a snippet of ~20 words runs 32 steps), coarse where
# batches of whole reviews are (their longest row is maxlen in 99% of batches of 64).
LENGTH_BUCKETS = (32, 64, 128, 256, 384)

ServingFunction = Callable[[tf.Tensor], dict[str, tf.Tensor]]


def length_buckets(maxlen: int) -> list[int]:
    """Every length a trimmed batch is rounded up to: the buckets below maxlen, then maxlen."""
    return [length for length in LENGTH_BUCKETS if length < maxlen] + [maxlen]


def bucketed_length(length: int, maxlen: int) -> int:
    """The smallest bucket that holds ``length`` real tokens."""
    return next(bucket for bucket in length_buckets(maxlen) if bucket >= min(length, maxlen))


def compiled_shapes(maxlen: int) -> list[tuple[int, int]]:
    """The ``(rows, length)`` blocks XLA compiles for a compiled+trimmed signature."""
    return [(rows, length) for rows in BATCH_BUCKETS for length in length_buckets(maxlen)]


def serving_function(model: keras.Model, maxlen: int, *, xla: bool = True, trim: bool = True) -> ServingFunction:
    """``tokens [-1, maxlen] -> {OUTPUT_NAME: [-1, 1]}`` for ``model``, a masked classifier.

    ``trim=False`` runs all ``maxlen`` columns (the computation before trimming,
    kept for comparisons and benchmarks).
    """

    def predict(tokens: tf.Tensor) -> tf.Tensor:
        return model(tokens, training=False)

    run = tf.function(predict, jit_compile=True) if xla else predict
    if not trim:
        return lambda tokens: {OUTPUT_NAME: run(tokens)}
    if not xla:
        return lambda tokens: {OUTPUT_NAME: run(_trim(tokens, list(range(1, maxlen + 1))))}

    largest = BATCH_BUCKETS[-1]
    buckets = tf.constant(BATCH_BUCKETS, tf.int32)

    def in_bucket(block: tf.Tensor) -> tf.Tensor:
        rows = tf.shape(block)[0]
        bucket = tf.gather(buckets, tf.searchsorted(buckets, tf.reshape(rows, [1]), side="left"))[0]
        return run(tf.pad(block, [[0, bucket - rows], [0, 0]]))[:rows]

    def in_chunks(block: tf.Tensor) -> tf.Tensor:
        rows, length = tf.shape(block)[0], tf.shape(block)[1]
        chunks = (rows + largest - 1) // largest
        padded = tf.pad(block, [[0, chunks * largest - rows], [0, 0]])
        outputs = tf.map_fn(run, tf.reshape(padded, [chunks, largest, length]),
                            fn_output_signature=tf.TensorSpec([largest, 1], tf.float32))
        return tf.reshape(outputs, [-1, 1])[:rows]

    def serve(tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        block = _trim(tokens, length_buckets(maxlen))
        output = tf.cond(tf.shape(block)[0] <= largest, lambda: in_bucket(block), lambda: in_chunks(block))
        return {OUTPUT_NAME: output}

    return serve


def _trim(tokens: tf.Tensor, buckets: list[int]) -> tf.Tensor:
    """``tokens`` without leading all-padding columns, the length rounded up to one of ``buckets``."""
    maxlen = buckets[-1]
    has_token = tf.reduce_any(tokens != PAD_ID, axis=0)
    first = tf.argmax(tf.cast(has_token, tf.int32), output_type=tf.int32)
    length = tf.where(tf.reduce_any(has_token), maxlen - first, 1)
    ladder = tf.constant(buckets, tf.int32)
    bucket = tf.gather(ladder, tf.searchsorted(ladder, tf.reshape(length, [1]), side="left"))[0]
    return tokens[:, maxlen - bucket:]


def input_spec(maxlen: int) -> tf.TensorSpec:
    return tf.TensorSpec(shape=(None, maxlen), dtype=tf.int32, name=INPUT_NAME)
