"""Python client of the gateway's gRPC API.

    from serving.client import SentimentClient

    with SentimentClient("127.0.0.1:8600") as client:
        for p in client.predict(["A wonderful film."], model="lstm"):
            print(p.label, p.positive_probability)
"""

from __future__ import annotations

from pathlib import Path

import grpc
from sentiment.v1 import sentiment_pb2, sentiment_pb2_grpc

from serving.grpc_retries import service_config

Prediction = sentiment_pb2.Prediction


class SentimentClient:
    """``max_attempts`` tries per call that fails with UNAVAILABLE (gRPC's retry policy,
    throttled; 1 = none). With ``wait_for_ready`` a call waits, within its deadline, for
    the gateway to become reachable instead of failing at once. ``api_key`` goes with
    every call, for gateways that ask for keys. ``tls`` (implied by ``ca_file``) verifies
    the gateway against the system's CAs or ``ca_file``; ``cert_file`` and ``key_file``
    are the client's own certificate for gateways that require one (mTLS)."""

    def __init__(self, target: str = "127.0.0.1:8600", timeout: float = 10.0, *,
                 max_attempts: int = 3, wait_for_ready: bool = False, api_key: str | None = None,
                 tls: bool = False, ca_file: Path | None = None,
                 cert_file: Path | None = None, key_file: Path | None = None) -> None:
        self.timeout = timeout
        self._wait_for_ready = wait_for_ready
        self._auth = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        options = [("grpc.service_config", service_config(["sentiment.v1.SentimentService"], max_attempts))]
        if tls or ca_file or cert_file:
            # The system's CAs unless ca_file is given; a client certificate for mTLS.
            credentials = grpc.ssl_channel_credentials(
                root_certificates=ca_file.read_bytes() if ca_file else None,
                private_key=key_file.read_bytes() if key_file else None,
                certificate_chain=cert_file.read_bytes() if cert_file else None,
            )
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = sentiment_pb2_grpc.SentimentServiceStub(self._channel)

    def predict(
        self, texts: str | list[str], model: str = "", version: int = 0, timeout: float | None = None,
        explain: bool = False, explain_top_k: int = 0, request_id: str | None = None,
    ) -> list[sentiment_pb2.Prediction]:
        """One prediction per text (with ``explain``, the words that moved it: ``explain_top_k``,
        0 for the gateway's default); raises ``grpc.RpcError`` with the service's status code.
        ``request_id`` names the call in the gateway's logs and keeps it on one arm of a canary."""
        request = sentiment_pb2.PredictRequest(
            texts=[texts] if isinstance(texts, str) else list(texts), model=model, version=version,
            explain=explain, explain_top_k=explain_top_k,
        )
        metadata = (*self._auth, *((("x-request-id", request_id),) if request_id else ()))
        return list(self._stub.Predict(request, timeout=timeout or self.timeout, metadata=metadata,
                                       wait_for_ready=self._wait_for_ready).predictions)

    def list_models(self, timeout: float | None = None) -> list[sentiment_pb2.Model]:
        return list(self._stub.ListModels(sentiment_pb2.ListModelsRequest(), timeout=timeout or self.timeout,
                                          metadata=self._auth, wait_for_ready=self._wait_for_ready).models)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SentimentClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
