"""Start-up warnings about how exposed the gateway is: no API keys at all, or keys that
would cross a network in clear."""

from __future__ import annotations

import ipaddress

from serving.gateway.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def exposure_warnings(settings: Settings, grpc: bool) -> list[str]:
    """What an operator should know before this server (gRPC when ``grpc``, else HTTP) takes calls."""
    warnings = []
    if settings.api_keys_file is None:
        warnings.append(f"no API keys ({Settings.variable('api_keys_file')} is unset): anyone who reaches "
                        "this API may call it")
    elif grpc and not settings.grpc_tls_cert and not is_loopback(settings.grpc_host):
        warnings.append(f"API keys travel in clear: the gRPC API serves plain text on {settings.grpc_host}; set "
                        f"{Settings.variable('grpc_tls_cert')} and {Settings.variable('grpc_tls_key')}, "
                        "or serve on loopback only")
    return warnings
