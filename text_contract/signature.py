"""Names of the exported serving signature, shared by the exporter and its clients."""

SIGNATURE_NAME = "serving_default"
INPUT_NAME = "tokens"  # int32 [batch, maxlen] token ids
OUTPUT_NAME = "positive_probability"  # float32 [batch, 1]
