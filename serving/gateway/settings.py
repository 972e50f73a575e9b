"""Gateway configuration from environment variables (all optional).

Every field maps to ``GATEWAY_<FIELD NAME IN UPPER CASE>`` and names its own parser,
so a value is never converted by guessing from the default's type (where "false"
would read as a true boolean); a bad value fails start-up with the variable named.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from text_contract.layout import SERVED_MODELS

LB_POLICIES = ("pick_first", "round_robin")
MIN_SALT_CHARS = 16  # a short salt could be found by trying salts against a known review


class SettingsError(ValueError):
    """A variable's value cannot be used; the message names the variable."""


def text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def path(raw: str) -> Path:
    return Path(text(raw))  # Path("") would silently mean the current folder


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a positive number of seconds")
    return value


def non_negative(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise ValueError("must be a number of at least 0")
    return value


def fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number from 0 to 1") from None
    if not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1")
    return value


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError("must be true or false")
    return value in ("true", "1")


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw

    return parse


def model_map(raw: str) -> dict[str, str]:
    """``lstm=imdb_lstm,simple_rnn=imdb_simple_rnn``: public name -> model server name."""
    pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise ValueError("must look like 'lstm=imdb_lstm,simple_rnn=imdb_simple_rnn'")
    return {public.strip(): served.strip() for public, served in pairs}


_ORIGIN = re.compile(r"https?://[^/\s]+")


def origins(raw: str) -> tuple[str, ...]:
    """``https://app.example.com,http://localhost:3000``: exact origins, no wildcard."""
    listed = tuple(item.strip().rstrip("/") for item in raw.split(",") if item.strip())
    bad = [origin for origin in listed if not _ORIGIN.fullmatch(origin)]
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
    return listed


def _setting(default: Any, parse: Callable[[str], Any]) -> Any:
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"parse": parse})
    return field(default=default, metadata={"parse": parse})


PORT = whole_number(0, 65535)
POSITIVE = whole_number(1)


@dataclass(frozen=True)
class Settings:
    model_server: str = _setting("localhost:8500", text)  # TF Serving (or the local model server) gRPC target
    # How calls spread over the addresses the target resolves to: gRPC's "pick_first"
    # (one connection) or "round_robin" (every address, e.g. a headless Service's pods).
    model_server_lb_policy: str = _setting("pick_first", one_of(*LB_POLICIES))
    models_dir: Path = _setting(Path("models"), path)  # export root holding <model>/<version>/assets.extra/
    models: dict[str, str] = _setting(SERVED_MODELS, model_map)  # public model name -> model server name
    default_model: str = _setting("lstm", text)
    rpc_timeout_seconds: float = _setting(5.0, seconds)  # deadline of every call to the model server
    # Tries per model-server call that fails with UNAVAILABLE (serving/grpc_retries.py); 1 = no retry.
    model_server_max_attempts: int = _setting(3, whole_number(1, 5))
    status_cache_seconds: float = _setting(1.0, seconds)  # how long the latest served version is remembered
    max_texts: int = _setting(64, POSITIVE)  # texts per request
    max_text_chars: int = _setting(20_000, POSITIVE)  # characters per text
    max_body_bytes: int = _setting(1_048_576, POSITIVE)  # HTTP request body
    max_explained_texts: int = _setting(8, POSITIVE)  # texts per request that asks for explanations
    # Refuse (422 / INVALID_ARGUMENT) texts without a word in the vocabulary instead of
    # answering them with the model's guess for an empty input, flagged no_known_words.
    refuse_no_known_words: bool = _setting(False, flag)
    # Predictions in progress per process; beyond: 429 / RESOURCE_EXHAUSTED.
    max_in_flight: int = _setting(128, POSITIVE)
    # Predict calls in flight per model version per process; more requests share the next.
    coalesce_max_calls: int = _setting(2, POSITIVE)
    # Rows per shared call; at most the model server's max_batch_size.
    coalesce_max_rows: int = _setting(128, POSITIVE)
    # The HTTP server (granian, serving.gateway.api.http_server), behind the buffering edge.
    http_host: str = _setting("127.0.0.1", text)
    http_port: int = _setting(8000, PORT)
    http_workers: int = _setting(2, POSITIVE)  # processes
    # Threads per process that run requests: they mostly wait on the model server, and
    # the more requests are in flight at once, the larger the batches it can form.
    http_threads: int = _setting(32, POSITIVE)
    # On SIGTERM, requests in progress get this long to finish before workers are killed.
    http_graceful_seconds: int = _setting(15, POSITIVE)
    # Browser apps on these origins may call the API (CORS); empty: no cross-origin access.
    cors_origins: tuple[str, ...] = _setting((), origins)
    # Logs on stdout: "text", or "json" lines (serving/gateway/observability/logs.py; the containers' choice).
    log_format: str = _setting("text", one_of("text", "json"))
    access_log: bool = _setting(False, flag)  # one line per HTTP request and gRPC call
    grpc_host: str = _setting("127.0.0.1", text)  # the gateway's own gRPC API
    grpc_port: int = _setting(8600, PORT)
    # Larger requests get RESOURCE_EXHAUSTED; the same bound as the HTTP body's.
    grpc_max_message_bytes: int = _setting(1_048_576, POSITIVE)
    # Threads that run the gRPC methods: requests in progress at once, so also how many rows
    # can meet in the model server's batches (16 halved the throughput of 64 clients). A call
    # takes one only once its key is checked and its message read.
    grpc_max_workers: int = _setting(64, POSITIVE)
    # Calls open at once in the process (more get RESOURCE_EXHAUSTED at once), and per
    # connection (HTTP/2 streams; more wait for one to end).
    grpc_max_concurrent_rpcs: int = _setting(512, POSITIVE)
    grpc_max_concurrent_streams: int = _setting(100, POSITIVE)
    # Calls one API key may have open at once in the process (more get RESOURCE_EXHAUSTED),
    # and how long a call may take to send its request message (then DEADLINE_EXCEEDED).
    grpc_max_calls_per_key: int = _setting(128, POSITIVE)
    # Calls without a key (health checks and watches, the V2 live/ready routes) one client
    # address may have open at once; a kubelet or load balancer needs one or two.
    grpc_max_probe_calls_per_address: int = _setting(16, POSITIVE)
    grpc_message_timeout_seconds: float = _setting(10.0, seconds)
    # A connection is closed after this long (its calls in progress get a minute to end), so
    # that clients re-resolve and spread over new replicas, and no connection lives forever.
    grpc_max_connection_age_seconds: float = _setting(300.0, seconds)
    # Server reflection (grpcurl, Postman) lists the services to anyone who connects: off
    # unless asked for.
    grpc_reflection: bool = _setting(False, flag)
    # TLS of the gRPC API: a PEM certificate chain and its key (both, or neither: plain
    # text); with a client CA as well, clients must show a certificate it signed (mTLS).
    grpc_tls_cert: Path | None = _setting(None, path)
    grpc_tls_key: Path | None = _setting(None, path)
    grpc_tls_client_ca: Path | None = _setting(None, path)
    grpc_shutdown_grace_seconds: float = _setting(10.0, seconds)
    health_check_seconds: float = _setting(1.0, seconds)  # how often gRPC health follows readiness
    # API keys (serving/gateway/access/api_keys.py): a file of salted key hashes, re-read when it
    # changes; unset: no key is asked for.
    api_keys_file: Path | None = _setting(None, path)
    # Requests a second each API key may send to a process (token bucket; 0: no limit),
    # and the burst it may send at once. Needs keys: without them callers are not told apart.
    rate_limit_per_key: float = _setting(0.0, non_negative)
    rate_limit_burst: int = _setting(50, POSITIVE)
    # Rollouts (serving/gateway/routing/rollouts.py): a YAML file re-read when it changes, or the
    # same document inline; unset: unpinned requests go to the newest available version.
    rollouts_file: Path | None = _setting(None, path)
    rollouts: str | None = _setting(None, text)
    shadow_max_in_flight: int = _setting(4, POSITIVE)  # shadow copies running at once per process
    # The sampled prediction log (serving/predictions_log): off unless a folder is given.
    prediction_log_dir: Path | None = _setting(None, path)
    prediction_log_sample_rate: float = _setting(0.01, fraction)
    # "hash": a salted hash of each text (reviews may hold personal data), or "text".
    prediction_log_texts: str = _setting("hash", one_of("hash", "text"))
    # The secret of the hashes, required with "hash": inline, or in a file (a mounted secret,
    # kept out of the environment); at least MIN_SALT_CHARS characters.
    prediction_log_salt: str | None = _setting(None, text)
    prediction_log_salt_file: Path | None = _setting(None, path)
    prediction_log_max_bytes: int = _setting(10_485_760, POSITIVE)  # per file before rotation
    prediction_log_max_files: int = _setting(5, POSITIVE)  # the current file and rotated ones

    @staticmethod
    def variable(name: str) -> str:
        return f"GATEWAY_{name.upper()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in fields(cls):
            variable = cls.variable(setting.name)
            raw = environ.get(variable)
            if raw is None:
                continue
            try:
                values[setting.name] = setting.metadata["parse"](raw)
            except ValueError as error:
                raise SettingsError(f"{variable}={raw!r}: {error}") from None
        settings = cls(**values)
        if settings.default_model not in settings.models:
            raise SettingsError(
                f"{cls.variable('default_model')}={settings.default_model!r}: "
                f"must be one of the models in {cls.variable('models')} ({', '.join(settings.models)})"
            )
        if bool(settings.grpc_tls_cert) != bool(settings.grpc_tls_key):
            raise SettingsError(f"set both {cls.variable('grpc_tls_cert')} and {cls.variable('grpc_tls_key')}, or neither")
        if settings.grpc_tls_client_ca and not settings.grpc_tls_cert:
            raise SettingsError(f"{cls.variable('grpc_tls_client_ca')} needs {cls.variable('grpc_tls_cert')}: "
                                "client certificates are checked over TLS only")
        if settings.rate_limit_per_key and not settings.api_keys_file:
            raise SettingsError(f"{cls.variable('rate_limit_per_key')} needs {cls.variable('api_keys_file')}: "
                                "rates are counted per API key")
        return cls._with_salt(settings)

    @classmethod
    def _with_salt(cls, settings: Settings) -> Settings:
        """``settings`` with the prediction log's salt read from its file, once it is checked."""
        inline, file = cls.variable("prediction_log_salt"), cls.variable("prediction_log_salt_file")
        if settings.prediction_log_salt and settings.prediction_log_salt_file:
            raise SettingsError(f"set {inline} or {file}, not both")
        salt, source = settings.prediction_log_salt, inline
        if settings.prediction_log_salt_file:
            source = file
            try:
                salt = settings.prediction_log_salt_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise SettingsError(f"{file}: cannot read the salt: {error}") from None
        if settings.prediction_log_dir and settings.prediction_log_texts == "hash" and not salt:
            raise SettingsError(
                f"{cls.variable('prediction_log_dir')} is set with hashed texts: set {inline} or {file} "
                f"to a secret (or {cls.variable('prediction_log_texts')}=text)"
            )
        if salt and len(salt) < MIN_SALT_CHARS:
            raise SettingsError(f"{source}: the salt must have at least {MIN_SALT_CHARS} characters, "
                                f"got {len(salt)}")
        return replace(settings, prediction_log_salt=salt, prediction_log_salt_file=None)
