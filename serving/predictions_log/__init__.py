"""The sampled prediction log: a writer for the gateway and a reader (``python -m serving.predictions_log``)."""
