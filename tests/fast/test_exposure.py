"""Start-up warnings: no keys at all, or keys that would cross a network in clear."""

from pathlib import Path

import pytest

from serving.gateway.api.exposure import exposure_warnings


def test_no_keys_is_said_for_both_apis(settings):
    for grpc in (True, False):
        (warning,) = exposure_warnings(settings, grpc)
        assert "GATEWAY_API_KEYS_FILE is unset" in warning


@pytest.mark.parametrize("host, tls, warned", [
    ("0.0.0.0", False, True), ("10.1.2.3", False, True), ("gateway", False, True),
    ("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False), ("0.0.0.0", True, False),
])
def test_keys_in_clear_on_a_reachable_grpc_port_are_said(settings, host, tls, warned):
    keyed = settings.with_changes(api_keys_file=Path("keys"), grpc_host=host,
                                  grpc_tls_cert=Path("c") if tls else None, grpc_tls_key=Path("k") if tls else None)
    warnings = exposure_warnings(keyed, grpc=True)
    assert bool(warnings) == warned and all("travel in clear" in w for w in warnings)
    assert exposure_warnings(keyed, grpc=False) == []  # HTTP is the edge's to encrypt
