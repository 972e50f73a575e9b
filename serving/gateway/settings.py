"""Gateway configuration from environment variables (all optional).

Every field is read from ``GATEWAY_<FIELD NAME IN UPPER CASE>`` through a validator of its own
kind, never through pydantic's lax conversions (where "on" would read as true and a list could
be JSON); a bad value fails start-up with the variable named.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from text_contract.layout import SERVED_MODELS

LB_POLICIES = ("pick_first", "round_robin")
MIN_SALT_CHARS = 16  # a short salt could be found by trying salts against a known review


class SettingsError(ValueError):
    """A variable's value cannot be used; the message names the variable."""


# -- the kinds of value ---------------------------------------------------------------------
# Each reads a variable's text, and checks a value given in Python (``Settings(...)``,
# ``with_changes``) by the same bounds; a value of another type is left to pydantic's check.


def _stripped(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _text(value: object) -> object:
    return _stripped(value) if isinstance(value, str) else value


def _path(value: object) -> object:
    # Path("") would silently mean the current folder.
    return Path(_stripped(value)) if isinstance(value, str) else value


def _whole_number(minimum: int, maximum: int | None = None) -> BeforeValidator:
    bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"

    def validate(value: object) -> int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValueError("must be a whole number") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("must be a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(f"must be {bound}")
        return value

    return BeforeValidator(validate)


def _number(accepts: Callable[[float], bool], unreadable: str, refused: str) -> BeforeValidator:
    def validate(value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(unreadable) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(unreadable)
        if not accepts(value):
            raise ValueError(refused)
        return float(value)

    return BeforeValidator(validate)


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _flag(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return _FLAGS[value.strip().lower()]
    except KeyError:
        raise ValueError("must be true or false") from None


def _one_of(*choices: str) -> BeforeValidator:
    def validate(value: object) -> object:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return BeforeValidator(validate)


def _model_map(value: object) -> object:
    """``lstm=imdb_lstm,simple_rnn=imdb_simple_rnn``: public name -> model server name."""
    if not isinstance(value, str):
        return value
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not pair[0].strip() or not pair[1].strip() for pair in pairs):
        raise ValueError("must look like 'lstm=imdb_lstm,simple_rnn=imdb_simple_rnn'")
    return {public.strip(): served.strip() for public, served in pairs}


_ORIGIN = re.compile(r"https?://[^/\s]+")


def _origins(value: object) -> object:
    """``https://app.example.com,http://localhost:3000``: exact origins, no wildcard."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        return value
    listed = tuple(item.strip().rstrip("/") for item in items if item.strip())
    bad = [origin for origin in listed if not _ORIGIN.fullmatch(origin)]
    if bad:
        raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(bad)}")
    return listed


Text = Annotated[str, BeforeValidator(_text)]
PathName = Annotated[Path, BeforeValidator(_path)]
Port = Annotated[int, _whole_number(0, 65535)]
Count = Annotated[int, _whole_number(1)]
Seconds = Annotated[float, _number(lambda value: math.isfinite(value) and value > 0,
                                   "must be a number of seconds", "must be a positive number of seconds")]
Rate = Annotated[float, _number(lambda value: math.isfinite(value) and value >= 0,
                                "must be a number", "must be a number of at least 0")]
Fraction = Annotated[float, _number(lambda value: 0 <= value <= 1,
                                    "must be a number from 0 to 1", "must be a number from 0 to 1")]
Flag = Annotated[bool, BeforeValidator(_flag)]
ModelMap = Annotated[dict[str, str], BeforeValidator(_model_map)]
Origins = Annotated[tuple[str, ...], BeforeValidator(_origins)]


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # read by the parent's constructor
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Names are matched in lower case: of them, only GATEWAY_<FIELD IN UPPER CASE> is a setting.
        upper = {name: value for name, value in self._environ.items() if name == name.upper()}
        return parse_env_vars(upper, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    """The gateway's settings: ``Settings.from_env()`` reads them, ``Settings(...)`` is the
    defaults and the values given, whatever the environment holds."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", frozen=True, extra="forbid", use_attribute_docstrings=True,
        enable_decoding=False,  # a variable's text goes to its field's validator as it is, never as JSON
    )

    model_server: Text = "localhost:8500"
    """TF Serving (or the local model server) gRPC target."""
    model_server_lb_policy: Annotated[str, _one_of(*LB_POLICIES)] = "pick_first"
    """How calls spread over the addresses the target resolves to: gRPC's "pick_first"
    (one connection) or "round_robin" (every address, e.g. a headless Service's pods)."""
    models_dir: PathName = Path("models")
    """Export root holding <model>/<version>/assets.extra/."""
    models: ModelMap = Field(default_factory=lambda: dict(SERVED_MODELS))
    """Public model name -> model server name."""
    default_model: Text = "lstm"
    """The model of requests that name none: one of ``models``."""
    rpc_timeout_seconds: Seconds = 5.0
    """Deadline of every call to the model server."""
    model_server_max_attempts: Annotated[int, _whole_number(1, 5)] = 3
    """Tries per model-server call that fails with UNAVAILABLE (serving/grpc_retries.py); 1 = no retry."""
    status_cache_seconds: Seconds = 1.0
    """How long the latest served version is remembered."""
    max_texts: Count = 64
    """Texts per request."""
    max_text_chars: Count = 20_000
    """Characters per text."""
    max_body_bytes: Count = 1_048_576
    """Bytes of an HTTP request body."""
    max_explained_texts: Count = 8
    """Texts per request that asks for explanations."""
    refuse_no_known_words: Flag = False
    """Refuse (422 / INVALID_ARGUMENT) texts without a word in the vocabulary instead of
    answering them with the model's guess for an empty input, flagged no_known_words."""
    max_in_flight: Count = 128
    """Predictions in progress per process; beyond: 429 / RESOURCE_EXHAUSTED."""
    coalesce_max_calls: Count = 2
    """Predict calls in flight per model version per process; more requests share the next."""
    coalesce_max_rows: Count = 128
    """Rows per shared call; at most the model server's max_batch_size."""
    http_host: Text = "127.0.0.1"
    """Address of the HTTP server (granian, serving.gateway.api.http_server), behind the buffering edge."""
    http_port: Port = 8000
    """Port of the HTTP server."""
    http_workers: Count = 2
    """Processes of the HTTP server."""
    http_threads: Count = 32
    """Threads per process that run requests: they mostly wait on the model server, and
    the more requests are in flight at once, the larger the batches it can form."""
    http_graceful_seconds: Count = 15
    """On SIGTERM, requests in progress get this long to finish before workers are killed."""
    cors_origins: Origins = ()
    """Browser apps on these origins may call the API (CORS); empty: no cross-origin access."""
    log_format: Annotated[str, _one_of("text", "json")] = "text"
    """Logs on stdout: "text", or "json" lines (serving/gateway/observability/logs.py; the
    containers' choice)."""
    access_log: Flag = False
    """One line per HTTP request and gRPC call."""
    grpc_host: Text = "127.0.0.1"
    """Address of the gateway's own gRPC API."""
    grpc_port: Port = 8600
    """Port of the gateway's own gRPC API."""
    grpc_max_message_bytes: Count = 1_048_576
    """Larger requests get RESOURCE_EXHAUSTED; the same bound as the HTTP body's."""
    grpc_max_workers: Count = 64
    """Threads that run the gRPC methods: requests in progress at once, so also how many rows
    can meet in the model server's batches (16 halved the throughput of 64 clients). A call
    takes one only once its key is checked and its message read."""
    grpc_max_concurrent_rpcs: Count = 512
    """Calls open at once in the process; more get RESOURCE_EXHAUSTED at once."""
    grpc_max_concurrent_streams: Count = 100
    """Calls open at once per connection (HTTP/2 streams); more wait for one to end."""
    grpc_max_calls_per_key: Count = 128
    """Calls one API key may have open at once in the process; more get RESOURCE_EXHAUSTED."""
    grpc_max_probe_calls_per_address: Count = 16
    """Calls without a key (health checks and watches, the V2 live/ready routes) one client
    address may have open at once; a kubelet or load balancer needs one or two."""
    grpc_message_timeout_seconds: Seconds = 10.0
    """How long a call may take to send its request message; then DEADLINE_EXCEEDED."""
    grpc_max_connection_age_seconds: Seconds = 300.0
    """A connection is closed after this long (its calls in progress get a minute to end), so
    that clients re-resolve and spread over new replicas, and no connection lives forever."""
    grpc_reflection: Flag = False
    """Server reflection (grpcurl, Postman) lists the services to anyone who connects: off
    unless asked for."""
    grpc_tls_cert: PathName | None = None
    """TLS of the gRPC API: a PEM certificate chain, with its key (both, or neither: plain text)."""
    grpc_tls_key: PathName | None = None
    """The PEM key of ``grpc_tls_cert``."""
    grpc_tls_client_ca: PathName | None = None
    """A client CA besides the certificate: clients must show a certificate it signed (mTLS)."""
    grpc_shutdown_grace_seconds: Seconds = 10.0
    """On SIGTERM, gRPC calls in progress get this long to finish."""
    health_check_seconds: Seconds = 1.0
    """How often gRPC health follows readiness."""
    api_keys_file: PathName | None = None
    """API keys (serving/gateway/access/api_keys.py): a file of salted key hashes, re-read when it
    changes; unset: no key is asked for."""
    rate_limit_per_key: Rate = 0.0
    """Requests a second each API key may send to a process (token bucket; 0: no limit).
    Needs keys: without them callers are not told apart."""
    rate_limit_burst: Count = 50
    """The requests each API key may send at once, beyond its rate."""
    rollouts_file: PathName | None = None
    """Rollouts (serving/gateway/routing/rollouts.py): a YAML file re-read when it changes; unset
    (and no inline document): unpinned requests go to the newest available version."""
    rollouts: Text | None = None
    """The same rollout document inline."""
    shadow_max_in_flight: Count = 4
    """Shadow copies running at once per process."""
    prediction_log_dir: PathName | None = None
    """The sampled prediction log (serving/predictions_log): off unless a folder is given."""
    prediction_log_sample_rate: Fraction = 0.01
    """The share of predictions logged."""
    prediction_log_texts: Annotated[str, _one_of("hash", "text")] = "hash"
    """"hash": a salted hash of each text (reviews may hold personal data), or "text"."""
    prediction_log_salt: Text | None = None
    """The secret of the hashes, required with "hash": inline, or in ``prediction_log_salt_file``;
    at least MIN_SALT_CHARS (16) characters."""
    prediction_log_salt_file: PathName | None = None
    """A file holding the secret of the hashes (a mounted secret, kept out of the environment);
    read once, into ``prediction_log_salt``."""
    prediction_log_max_bytes: Count = 10_485_760
    """Bytes per file before rotation."""
    prediction_log_max_files: Count = 5
    """Files kept: the current file and rotated ones."""

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        """The rules between fields; the salt of a file is read into ``prediction_log_salt``."""
        variable = self.variable
        if self.default_model not in self.models:
            raise ValueError(
                f"{variable('default_model')}={self.default_model!r}: "
                f"must be one of the models in {variable('models')} ({', '.join(self.models)})"
            )
        if bool(self.grpc_tls_cert) != bool(self.grpc_tls_key):
            raise ValueError(f"set both {variable('grpc_tls_cert')} and {variable('grpc_tls_key')}, "
                             "or neither")
        if self.grpc_tls_client_ca and not self.grpc_tls_cert:
            raise ValueError(f"{variable('grpc_tls_client_ca')} needs {variable('grpc_tls_cert')}: "
                             "client certificates are checked over TLS only")
        if self.rate_limit_per_key and not self.api_keys_file:
            raise ValueError(f"{variable('rate_limit_per_key')} needs {variable('api_keys_file')}: "
                             "rates are counted per API key")
        inline, file = variable("prediction_log_salt"), variable("prediction_log_salt_file")
        if self.prediction_log_salt and self.prediction_log_salt_file:
            raise ValueError(f"set {inline} or {file}, not both")
        salt, source = self.prediction_log_salt, inline
        if self.prediction_log_salt_file:
            source = file
            try:
                salt = self.prediction_log_salt_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"{file}: cannot read the salt: {error}") from None
            # Frozen, but still being validated: the salt takes its file's place, once.
            object.__setattr__(self, "prediction_log_salt", salt)
            object.__setattr__(self, "prediction_log_salt_file", None)
        if self.prediction_log_dir and self.prediction_log_texts == "hash" and not salt:
            raise ValueError(
                f"{variable('prediction_log_dir')} is set with hashed texts: set {inline} or {file} "
                f"to a secret (or {variable('prediction_log_texts')}=text)"
            )
        if salt and len(salt) < MIN_SALT_CHARS:
            raise ValueError(f"{source}: the salt must have at least {MIN_SALT_CHARS} characters, "
                             f"got {len(salt)}")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only from_env reads variables, so that a shell's GATEWAY_* never leaks into Settings(...).
        return (init_settings,)

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field ``name``."""
        return f"{cls.model_config['env_prefix']}{name.upper()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of the ``GATEWAY_*`` variables of ``environ`` (by default the process's)."""
        return cls._validated(_Environment(cls, os.environ if environ is None else environ)())

    def with_changes(self, **changes: object) -> Settings:
        """A copy with ``changes``, validated as the variables are (SettingsError if one is bad)."""
        return self._validated({**self.model_dump(), **changes})

    @classmethod
    def _validated(cls, values: Mapping[str, object]) -> Settings:
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError(cls._explained(error.errors()[0])) from None

    @classmethod
    def _explained(cls, error: ErrorDetails) -> str:
        reason = error.get("ctx", {}).get("error", error["msg"])
        if not error["loc"]:
            return str(reason)  # a rule between fields, whose message names the variables
        return f"{cls.variable(str(error['loc'][0]))}={error['input']!r}: {reason}"
