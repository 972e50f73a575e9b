"""A TF-Serving-compatible model server for machines where TF Serving cannot run.

It speaks TF Serving's gRPC API (PredictionService, ModelService) and a subset of
its REST API, reads the same ``models.config`` and batching parameters files, and
runs the real SavedModels with TensorFlow.
"""
