"""Gateway configuration from environment variables (all optional)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

LB_POLICIES = ("pick_first", "round_robin")


def _models(spec: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"GATEWAY_MODELS must look like 'lstm=imdb_lstm,simple_rnn=imdb_simple_rnn', got {spec!r}")
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass(frozen=True)
class Settings:
    """Every field maps to ``GATEWAY_<FIELD NAME IN UPPER CASE>``; defaults below."""

    model_server: str = "localhost:8500"  # TF Serving (or the local model server) gRPC target
    # How calls spread over the addresses the target resolves to: gRPC's "pick_first"
    # (one connection) or "round_robin" (every address, e.g. a headless Service's pods).
    model_server_lb_policy: str = "pick_first"
    models_dir: Path = Path("models")  # export root holding <model>/<version>/assets.extra/
    models: dict[str, str] = field(
        default_factory=lambda: {"lstm": "imdb_lstm", "simple_rnn": "imdb_simple_rnn"}
    )  # public model name -> model server name
    default_model: str = "lstm"
    rpc_timeout_seconds: float = 5.0  # deadline of every call to the model server
    status_cache_seconds: float = 1.0  # how long the latest served version is remembered
    max_texts: int = 64  # texts per request
    max_text_chars: int = 20_000  # characters per text
    max_body_bytes: int = 1_048_576  # HTTP request body
    body_timeout_seconds: float = 10.0  # an HTTP body not complete by then gets 408
    max_in_flight: int = 128  # predictions in progress per process; beyond: 429 / RESOURCE_EXHAUSTED
    coalesce_max_calls: int = 2  # Predict calls in flight per model version per process; more requests share the next
    coalesce_max_rows: int = 128  # rows per shared call; at most the model server's max_batch_size
    grpc_host: str = "127.0.0.1"  # the gateway's own gRPC API
    grpc_port: int = 8600
    grpc_max_message_bytes: int = 4_194_304  # larger requests get RESOURCE_EXHAUSTED
    grpc_max_workers: int = 16
    grpc_shutdown_grace_seconds: float = 10.0
    health_check_seconds: float = 1.0  # how often gRPC health follows readiness

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        for name, spec in cls.__dataclass_fields__.items():
            raw = environ.get(f"GATEWAY_{name.upper()}")
            if raw is None:
                continue
            if name == "models":
                values[name] = _models(raw)
            elif name == "models_dir":
                values[name] = Path(raw)
            else:
                kind = type(getattr(cls(), name))
                try:
                    values[name] = kind(raw)
                except ValueError as error:
                    raise ValueError(f"GATEWAY_{name.upper()}={raw!r}: expected {kind.__name__}") from error
        settings = cls(**values)
        if settings.coalesce_max_calls < 1 or settings.coalesce_max_rows < 1:
            raise ValueError("GATEWAY_COALESCE_MAX_CALLS and GATEWAY_COALESCE_MAX_ROWS must be at least 1")
        if settings.model_server_lb_policy not in LB_POLICIES:
            raise ValueError(
                f"GATEWAY_MODEL_SERVER_LB_POLICY={settings.model_server_lb_policy!r}: expected one of {LB_POLICIES}"
            )
        if settings.default_model not in settings.models:
            raise ValueError(f"GATEWAY_DEFAULT_MODEL {settings.default_model!r} is not in {sorted(settings.models)}")
        return settings
