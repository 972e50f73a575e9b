"""What Predict, GetModelMetadata and GetModelStatus do, whichever API asked.

The gRPC and REST APIs only translate their wire formats to and from numpy arrays
and these calls; Predict is counted and timed here, for both, with the
``entrypoint`` label saying which one (``GRPC`` or ``REST``, as TF Serving does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serving.model_server import metrics
from serving.model_server.errors import InvalidArgument, ServingError
from serving.model_server.manager import ModelManager, VersionStatus
from serving.model_server.servable import LoadedVersion, Signature


@dataclass(frozen=True)
class ModelRef:
    """A model and, optionally, one version of it by number or by label."""

    name: str
    version: int | None = None
    label: str = ""


@dataclass(frozen=True)
class Prediction:
    served: LoadedVersion
    signature_name: str
    outputs: dict[str, np.ndarray]  # the requested outputs, in the requested order


# Turns the API's request body into arrays, once the signature (and so the dtypes) is known.
InputDecoder = Callable[[Signature], dict[str, np.ndarray]]


class DataPlane:
    def __init__(self, manager: ModelManager) -> None:
        self._manager = manager

    def predict(self, model: ModelRef, signature_name: str, decode: InputDecoder,
                output_filter: list[str], entrypoint: str) -> Prediction:
        started = time.perf_counter()
        try:
            prediction = self._predict(model, signature_name, decode, output_filter)
        except ServingError as error:
            metrics.REQUEST_COUNT.labels(model.name, error.grpc_code.name).inc()
            raise
        metrics.REQUEST_COUNT.labels(model.name, "OK").inc()
        # In microseconds, like TF Serving's, so prometheus-client's time() does not fit.
        metrics.REQUEST_LATENCY.labels(model.name, "Predict", entrypoint).observe(
            (time.perf_counter() - started) * 1e6)
        return prediction

    def _predict(self, model: ModelRef, signature_name: str, decode: InputDecoder,
                 output_filter: list[str]) -> Prediction:
        served = self._manager.resolve(model.name, model.version, model.label)
        signature = served.loaded.signature(signature_name)
        inputs = decode(signature)
        signature.check_inputs(inputs)
        wanted = output_filter or list(signature.outputs)
        unknown = [alias for alias in wanted if alias not in signature.outputs]
        if unknown:
            raise InvalidArgument(f"output tensor alias not found in signature: {', '.join(unknown)}")
        outputs = served.run(signature, inputs)
        return Prediction(served.loaded, signature.name, {alias: outputs[alias] for alias in wanted})

    def metadata(self, model: ModelRef) -> LoadedVersion:
        """The version whose ``signature_defs`` answer a metadata request."""
        return self._manager.resolve(model.name, model.version, model.label).loaded

    def status(self, model: ModelRef) -> dict[int, VersionStatus]:
        version = model.version
        if model.label:
            version = self._manager.resolve(model.name, None, model.label).loaded.version
        return self._manager.statuses(model.name, version)
