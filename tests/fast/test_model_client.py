"""How the gateway's model client turns each gRPC status of a model server into a gateway error.

The model server here is a real gRPC server implementing TF Serving's PredictionService
that answers every call with one chosen status, so each mapping is exercised over the wire.
"""

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest

from serving.gateway.errors import (
    ModelNotFound,
    ModelServerFailure,
    ModelServerTimeout,
    ModelServerUnavailable,
)
from serving.gateway.routing.model_client import ModelServerClient
from serving.tfs_apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from text_contract.signature import INPUT_NAME, OUTPUT_NAME


class FailingPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK
        self.details = ""

    def Predict(self, request, context):
        context.abort(self.code, self.details)


@pytest.fixture(scope="module")
def failing() -> Iterator[tuple[FailingPredictionService, ModelServerClient]]:
    service = FailingPredictionService()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = ModelServerClient(f"127.0.0.1:{port}", timeout_seconds=5)
    yield service, client
    client.close()
    server.stop(0)


@pytest.mark.parametrize("code, details, error, http_status, message", [
    (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(lstm, 9)", ModelNotFound, 404,
     "Servable not found"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "", ModelServerTimeout, 504, "did not answer in time"),
    (grpc.StatusCode.UNAVAILABLE, "", ModelServerUnavailable, 503, "unavailable"),
    (grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full",
     ModelServerUnavailable, 503, "overloaded, retry shortly"),
    (grpc.StatusCode.CANCELLED, "Cancelled", ModelServerUnavailable, 503, "unavailable"),
    (grpc.StatusCode.INTERNAL, "boom", ModelServerFailure, 502, "failed (INTERNAL)"),
    (grpc.StatusCode.INVALID_ARGUMENT, "bad shape", ModelServerFailure, 502, "failed (INVALID_ARGUMENT)"),
])
def test_model_server_statuses_become_gateway_errors(failing, code, details, error, http_status, message):
    service, client = failing
    service.code, service.details = code, details
    with pytest.raises(error) as raised:
        client.predict("lstm", 9, np.zeros((1, 500), dtype=np.int32))
    assert raised.value.http_status == http_status
    assert message in raised.value.message and raised.value.message.startswith("lstm version 9")
    assert raised.value.upstream_code == code.name
    if http_status == 503:
        assert raised.value.retry_after == 1


class StatusService(model_service_pb2_grpc.ModelServiceServicer):
    def GetModelStatus(self, request, context):
        response = get_model_status_pb2.GetModelStatusResponse()
        for version in (1, 2**40):  # TF Serving allows int64 versions; the gateway's APIs carry int32
            response.model_version_status.add(version=version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response


def test_versions_beyond_the_gateway_api_range_are_left_out(caplog):
    server = grpc.server(futures.ThreadPoolExecutor(2))
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(StatusService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = ModelServerClient(f"127.0.0.1:{port}", timeout_seconds=5)
    try:
        assert client.version_states("imdb_lstm") == {1: "AVAILABLE"}
        assert f"imdb_lstm version {2**40} is beyond" in caplog.text
    finally:
        client.close()
        server.stop(0)


class RestartingPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Refuses its first ``failures`` calls with UNAVAILABLE, as a restarting server does."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def Predict(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = request.model_spec.version.value
        rows = request.inputs[INPUT_NAME].tensor_shape.dim[0].size
        response.outputs[OUTPUT_NAME].float_val.extend([0.25] * rows)
        return response


@pytest.mark.parametrize("max_attempts, failures, answered", [
    (3, 2, True),   # two refusals are retried away
    (3, 3, False),  # the third is the last try
    (1, 1, False),  # retries off
])
def test_unavailable_calls_are_retried_up_to_max_attempts(max_attempts, failures, answered):
    service = RestartingPredictionService(failures)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = ModelServerClient(f"127.0.0.1:{port}", timeout_seconds=5, max_attempts=max_attempts)
    try:
        if answered:
            values, version = client.predict("lstm", 3, np.zeros((2, 500), dtype=np.int32))
            assert values.tolist() == [0.25, 0.25] and version == 3
        else:
            with pytest.raises(ModelServerUnavailable):
                client.predict("lstm", 3, np.zeros((2, 500), dtype=np.int32))
        assert service.calls == min(failures + 1, max_attempts)
    finally:
        client.close()
        server.stop(0)


class CountingPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers every attempt with ``code`` (OK: a prediction of 0.25 per row) and counts them."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.code = code
        self.attempts = 0
        self._lock = threading.Lock()

    def Predict(self, request, context):
        with self._lock:
            self.attempts += 1
        if self.code != grpc.StatusCode.OK:
            context.abort(self.code, f"refused with {self.code.name}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = request.model_spec.version.value
        rows = request.inputs[INPUT_NAME].tensor_shape.dim[0].size
        response.outputs[OUTPUT_NAME].float_val.extend([0.25] * rows)
        return response


@pytest.fixture
def counting(tmp_path) -> Iterator[tuple[CountingPredictionService, ModelServerClient]]:
    """A model server on a socket of this test's own: gRPC keeps retry throttling per server name
    for the whole process, so a reused loopback port could inherit another test's tokens."""
    service = CountingPredictionService(grpc.StatusCode.OK)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
    target = f"unix:{tmp_path / 'model-server.sock'}"
    server.add_insecure_port(target)
    server.start()
    client = ModelServerClient(target, timeout_seconds=5, max_attempts=3)
    yield service, client
    client.close()
    server.stop(0)


def attempts_of_one_call(service: CountingPredictionService, client: ModelServerClient) -> int:
    before = service.attempts
    try:
        client.predict("lstm", 3, np.zeros((1, 500), dtype=np.int32))
    except (ModelServerUnavailable, ModelServerFailure, ModelServerTimeout):
        pass
    return service.attempts - before


@pytest.mark.parametrize("code, error, attempts", [
    (grpc.StatusCode.UNAVAILABLE, ModelServerUnavailable, 3),  # refused before any work: safe to send again
    (grpc.StatusCode.INTERNAL, ModelServerFailure, 1),  # the model failed: again would fail again
    (grpc.StatusCode.DEADLINE_EXCEEDED, ModelServerTimeout, 1),  # the server gave up: the time is spent
])
def test_only_unavailable_is_retried(counting, code, error, attempts):
    service, client = counting
    service.code = code
    with pytest.raises(error) as raised:
        client.predict("lstm", 3, np.zeros((1, 500), dtype=np.int32))
    assert raised.value.upstream_code == code.name
    assert service.attempts == attempts


def test_retries_stop_while_most_calls_fail_and_resume_after_successes(counting):
    service, client = counting
    service.code = grpc.StatusCode.UNAVAILABLE
    # 10 tokens, one per failed attempt; at half of them left, retrying stops.
    assert [attempts_of_one_call(service, client) for _ in range(4)] == [3, 2, 1, 1]  # 3 tokens left
    service.code = grpc.StatusCode.OK
    assert [attempts_of_one_call(service, client) for _ in range(40)] == [1] * 40  # 0.1 token back each: 7
    service.code = grpc.StatusCode.UNAVAILABLE
    assert attempts_of_one_call(service, client) == 2  # 7 -> 6: retried; 6 -> 5: half left, not retried
