"""Calls to TF Serving's gRPC API (or the local model server, which speaks the same API).

One long-lived channel per process; every call carries a deadline. gRPC errors
become gateway errors; the raw status code is kept for metrics. The target is any
gRPC target: ``host:port``, ``dns:///name:port`` (re-resolved when connections
drop) or a fixed list ``ipv4:10.0.0.1:8500,10.0.0.2:8500``; with the round_robin
policy the calls spread over every address it resolves to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
import numpy as np

from serving.gateway.access.request_ids import request_id_metadata
from serving.gateway.errors import (
    GatewayError,
    ModelNotFound,
    ModelServerFailure,
    ModelServerTimeout,
    ModelServerUnavailable,
)
from serving.grpc_retries import service_config
from serving.tfs_apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    types_pb2,
)
from text_contract.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME

log = logging.getLogger(__name__)
STATE_NAMES = {value: name for name, value in get_model_status_pb2.ModelVersionStatus.State.items()}
# The gateway's answers carry versions as int32 (sentiment.v1's Prediction.model_version and
# ModelVersion.version; requests take int64 as TF Serving does), so larger versions are not served.
MAX_VERSION = 2**31 - 1


# The gateway never cancels its own calls, so CANCELLED means the model server dropped
# the call: gRPC core (TF Serving's too) cancels calls still waiting for a handler when
# the server shuts down (grpc/grpc#41785). Retrying elsewhere or later is safe.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED)


def _translate(error: grpc.RpcError, what: str) -> GatewayError:
    code = error.code()
    details = error.details() or code.name
    if code == grpc.StatusCode.NOT_FOUND:
        translated: GatewayError = ModelNotFound(f"{what}: {details}")
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        translated = ModelServerTimeout(f"{what}: the model server did not answer in time")
    elif code in _RETRYABLE:
        overloaded = "queue" in details and "full" in details
        translated = ModelServerUnavailable(
            f"{what}: the model server is overloaded, retry shortly" if overloaded
            else f"{what}: the model server is unavailable",
            retry_after=1,
        )
    else:
        translated = ModelServerFailure(f"{what}: the model server failed ({code.name})")
    translated.upstream_code = code.name
    return translated


def predict_request(model_name: str, version: int, ids: np.ndarray) -> predict_pb2.PredictRequest:
    """The Predict call of the serving signature for an int32 ``[batch, maxlen]`` matrix."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.version.value = version
    request.model_spec.signature_name = SIGNATURE_NAME
    tensor = request.inputs[INPUT_NAME]
    tensor.dtype = types_pb2.DT_INT32
    for size in ids.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.tensor_content = np.ascontiguousarray(ids, dtype="<i4").tobytes()
    request.output_filter.append(OUTPUT_NAME)
    return request


def probabilities(response: predict_pb2.PredictResponse, model_name: str, rows: int) -> np.ndarray:
    """The positive probabilities of a Predict answer, one per row sent."""
    output = response.outputs[OUTPUT_NAME]
    if output.tensor_content:
        values = np.frombuffer(output.tensor_content, dtype="<f4")
    else:
        values = np.asarray(output.float_val, dtype=np.float32)
    if values.size != rows:
        raise ModelServerFailure(f"{model_name}: expected {rows} outputs, got {values.size}")
    return values


class ModelServerClient:
    def __init__(
        self,
        address: str,
        timeout_seconds: float,
        max_message_bytes: int = 64 << 20,
        lb_policy: str = "pick_first",
        max_attempts: int = 3,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                # Reconnect within a second of the model server coming back, instead of
                # gRPC's default backoff of up to two minutes.
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                # Re-resolve a name at most once a second, not gRPC's default 30 s: a
                # model server whose DNS record appears just after the gateway starts
                # (a compose service, a headless Service's new pod) is found at once.
                ("grpc.dns_min_time_between_resolutions_ms", 1000),
                # A call refused while the model server restarts is retried by gRPC, so
                # a restart behind a load balancer costs latency, not errors.
                ("grpc.service_config", service_config(
                    ["tensorflow.serving.PredictionService", "tensorflow.serving.ModelService"],
                    max_attempts, lb_policy)),
            ],
        )
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def predict(
        self, model_name: str, version: int, ids: np.ndarray, timeout: float | None = None,
        request_ids: Sequence[str] = (),
    ) -> tuple[np.ndarray, int]:
        """Positive probabilities for an int32 ``[batch, maxlen]`` matrix, and the version that ran.

        ``request_ids``, of the requests whose rows these are, go along as metadata for the
        model server's logs."""
        request = predict_request(model_name, version, ids)
        try:
            response = self._predictions.Predict(request, timeout=timeout or self.timeout_seconds,
                                                 metadata=request_id_metadata(request_ids))
        except grpc.RpcError as error:
            raise _translate(error, f"{model_name} version {version}") from None
        return probabilities(response, model_name, ids.shape[0]), response.model_spec.version.value

    def version_states(self, model_name: str, timeout: float | None = None) -> dict[int, str]:
        """Every version the model server knows of ``model_name``, with its state name."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        try:
            response = self._models.GetModelStatus(request, timeout=timeout or self.timeout_seconds)
        except grpc.RpcError as error:
            raise _translate(error, model_name) from None
        states = {}
        for status in response.model_version_status:
            if status.version > MAX_VERSION:
                log.warning("%s version %d is beyond the versions the gateway serves (1..%d): ignored",
                            model_name, status.version, MAX_VERSION)
                continue
            states[status.version] = STATE_NAMES[status.state]
        return states

    def resolve_label(self, model_name: str, label: str, timeout: float | None = None) -> int:
        """The version a TF Serving version label (``models.config``'s ``version_labels``) names."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model_name
        request.model_spec.version_label = label
        try:
            response = self._predictions.GetModelMetadata(request, timeout=timeout or self.timeout_seconds)
        except grpc.RpcError as error:
            raise _translate(error, f"{model_name} version label {label!r}") from None
        return response.model_spec.version.value

    def close(self) -> None:
        self._channel.close()
