"""Names of the exported serving signature, shared by the exporter and its clients.

Kept free of TensorFlow so the gateway can import it.
"""

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "tokens"  # int32 [batch, maxlen] token ids
OUTPUT_NAME = "positive_probability"  # float32 [batch, 1]

# TF Serving replays the PredictionLog records of this TFRecord file against every
# version it loads, before marking it AVAILABLE (its "SavedModel warmup").
WARMUP_REQUESTS_FILE = "assets.extra/tf_serving_warmup_requests"
