"""Warmup requests written into every exported version, in TF Serving's format.

TF Serving (and the local model server) run these requests against a newly loaded
version before marking it AVAILABLE, so the one-off cost of a SavedModel's first
calls is paid during loading instead of by the first user requests after a
rollout. For a compiled signature that cost is an XLA compilation per
``(rows, length)`` block, so there is one request per block the signature can
meet (``training.signature.compiled_shapes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from text_contract.layout import WARMUP_REQUESTS_FILE
from text_contract.signature import INPUT_NAME, SIGNATURE_NAME
from text_contract.tokenizer import OOV_ID, START_ID
from training.signature import BATCH_BUCKETS, compiled_shapes

# Without XLA: a lone request and a full batch (the largest batch bucket, equal to the batching file's
# max_batch_size), the shapes a version meets first under light and heavy traffic.
PLAIN_WARMUP_SHAPES = ((1, 4), (BATCH_BUCKETS[-1], 4))


def warmup_shapes(maxlen: int, xla: bool) -> list[tuple[int, int]]:
    """``(rows, real tokens)`` of each warmup request."""
    return compiled_shapes(maxlen) if xla else list(PLAIN_WARMUP_SHAPES)


def warmup_tokens(rows: int, length: int, maxlen: int) -> np.ndarray:
    """A padded batch shaped like real requests: zeros, then a start id and ``length - 1`` out-of-vocabulary ids."""
    tokens = np.zeros((rows, maxlen), np.int32)
    tokens[:, maxlen - length] = START_ID
    tokens[:, maxlen - length + 1:] = OOV_ID
    return tokens


def write_warmup_requests(
    version_dir: Path, model_name: str, maxlen: int, shapes: Iterable[tuple[int, int]]
) -> Path:
    path = version_dir / WARMUP_REQUESTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for rows, length in shapes:
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = model_name
            request.model_spec.signature_name = SIGNATURE_NAME
            request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(warmup_tokens(rows, length, maxlen)))
            writer.write(log.SerializeToString())
    return path
