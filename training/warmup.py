"""Warmup requests written into every exported version, in TF Serving's format.

TF Serving (and the local model server) run these requests against a newly loaded
version before marking it AVAILABLE, so the one-off cost of a SavedModel's first
calls (graph optimisation, kernel set-up per batch shape) is paid during loading
instead of by the first user requests after a rollout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from text_contract.layout import WARMUP_REQUESTS_FILE
from text_contract.signature import INPUT_NAME, SIGNATURE_NAME
from text_contract.tokenizer import OOV_ID, START_ID

# A lone request and a full batch of the server's batching window: the shapes a
# version meets first under light and heavy traffic.
WARMUP_BATCH_SIZES = (1, 64)


def warmup_tokens(batch_size: int, maxlen: int) -> np.ndarray:
    """A padded batch shaped like real requests: zeros, then a start id and a few word ids."""
    tokens = np.zeros((batch_size, maxlen), np.int32)
    tokens[:, -4] = START_ID
    tokens[:, -3:] = OOV_ID
    return tokens


def write_warmup_requests(version_dir: Path, model_name: str, maxlen: int) -> Path:
    path = version_dir / WARMUP_REQUESTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch_size in WARMUP_BATCH_SIZES:
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = model_name
            request.model_spec.signature_name = SIGNATURE_NAME
            request.inputs[INPUT_NAME].CopyFrom(tf.make_tensor_proto(warmup_tokens(batch_size, maxlen)))
            writer.write(log.SerializeToString())
    return path
