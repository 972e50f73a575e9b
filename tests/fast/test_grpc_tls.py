"""The gateway's gRPC API over TLS and mTLS, against a throw-away CA (openssl)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from harness.certificates import Certificates, make_certificates
from serving.client import SentimentClient
from serving.gateway.api.grpc_server import build_server
from serving.gateway.settings import Settings, SettingsError


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("other-ca"))


def serve(settings, service, **tls):
    server, _, port = build_server(settings.with_changes(grpc_host="127.0.0.1", grpc_port=0, **tls), service)
    server.start()
    return server, f"127.0.0.1:{port}"


def answered(target: str, **client) -> grpc.StatusCode:
    with SentimentClient(target, timeout=5, max_attempts=1, **client) as sentiment:
        try:
            sentiment.predict(["a good film"])
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_tls_is_verified_against_the_ca_and_plain_text_is_refused(settings, service, certificates, other_ca):
    server, target = serve(settings, service, grpc_tls_cert=certificates.server_cert, grpc_tls_key=certificates.server_key)
    try:
        assert answered(target, ca_file=certificates.ca) == grpc.StatusCode.OK
        assert answered(target) == grpc.StatusCode.UNAVAILABLE  # plain text to a TLS port
        assert answered(target, ca_file=other_ca.ca) == grpc.StatusCode.UNAVAILABLE  # a certificate we do not trust
    finally:
        server.stop(0)


def test_mtls_requires_a_client_certificate_the_client_ca_signed(settings, service, certificates, other_ca):
    server, target = serve(settings, service, grpc_tls_cert=certificates.server_cert,
                           grpc_tls_key=certificates.server_key, grpc_tls_client_ca=certificates.ca)
    try:
        ours = {"ca_file": certificates.ca, "cert_file": certificates.client_cert, "key_file": certificates.client_key}
        assert answered(target, **ours) == grpc.StatusCode.OK
        assert answered(target, ca_file=certificates.ca) == grpc.StatusCode.UNAVAILABLE  # no client certificate
        stranger = {"ca_file": certificates.ca, "cert_file": other_ca.client_cert, "key_file": other_ca.client_key}
        assert answered(target, **stranger) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


@pytest.mark.parametrize("environ, fragment", [
    ({"GATEWAY_GRPC_TLS_CERT": "server.pem"}, "set both"),
    ({"GATEWAY_GRPC_TLS_CLIENT_CA": "ca.pem"}, "needs GATEWAY_GRPC_TLS_CERT"),
])
def test_half_a_tls_configuration_is_refused_at_start(environ, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(environ)


def test_unreadable_tls_files_are_named_at_start(settings, service, tmp_path: Path):
    with pytest.raises(SettingsError, match="cannot read a TLS file"):
        serve(settings, service, grpc_tls_cert=tmp_path / "missing.pem", grpc_tls_key=tmp_path / "missing.key")
