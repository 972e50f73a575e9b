"""TF Serving's SavedModel warmup: replay a version's recorded requests before serving it.

The file is a TFRecord of ``PredictionLog`` messages. As in TF Serving, each record
runs once against the loaded version, a record that fails fails the load (the
version goes to END and the previous one keeps serving), and at most 1,000 records
are read.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving.model_server.servable import LoadedVersion
from serving.model_server.tensors import tensor_to_array
from text_contract.layout import WARMUP_REQUESTS_FILE

MAX_WARMUP_RECORDS = 1000  # TF Serving's limit


class WarmupError(ValueError):
    pass


def warm_up(loaded: LoadedVersion) -> int:
    """Run the version's warmup requests, if it has any; return how many ran."""
    path = loaded.path / WARMUP_REQUESTS_FILE
    if not path.is_file():
        return 0
    count = 0
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise WarmupError(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise WarmupError(f"{path}: record {count} is a {kind}; this server replays predict_log only")
        request = log.predict_log.request
        signature = loaded.signature(request.model_spec.signature_name)
        inputs = {alias: tensor_to_array(proto) for alias, proto in request.inputs.items()}
        signature.check_inputs(inputs)
        loaded.run(signature, inputs)
    return count
