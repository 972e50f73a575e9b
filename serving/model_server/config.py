"""Reading TF Serving's config files with TF Serving's own protobuf schemas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from sentiment.tfserving.batching_parameters_pb2 import BatchingParameters
from sentiment.tfserving.monitoring_config_pb2 import MonitoringConfig

from serving.tfs_apis import model_server_config_pb2


class ConfigError(Exception):
    """A config file is missing, does not parse, or is inconsistent."""


def _parse(path: Path, message):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror or error})") from error
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"{path}: {error}") from error


def load_model_config(path: Path) -> list[model_server_config_pb2.ModelConfig]:
    """The ``model_config_list`` entries of a TF Serving ``--model_config_file``."""
    config = _parse(path, model_server_config_pb2.ModelServerConfig())
    if config.WhichOneof("config") != "model_config_list":
        raise ConfigError(f"{path}: expected a model_config_list")
    models = list(config.model_config_list.config)
    names = [model.name for model in models]
    if not models:
        raise ConfigError(f"{path}: model_config_list has no models")
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: duplicate model names in {names}")
    for model in models:
        if not model.name or not model.base_path:
            raise ConfigError(f"{path}: every model needs a name and a base_path")
        if model.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{path}: model {model.name}: platform {model.model_platform!r} not supported")
    return models


@dataclass(frozen=True)
class BatchingOptions:
    max_batch_size: int
    batch_timeout_micros: int
    max_enqueued_batches: int
    num_batch_threads: int
    allowed_batch_sizes: tuple[int, ...]


def load_batching_parameters(path: Path | None) -> BatchingOptions:
    """A ``--batching_parameters_file``, with TF Serving's defaults for unset fields (or no file)."""
    params = _parse(path, BatchingParameters()) if path else BatchingParameters()

    def value(field: str, default: int) -> int:
        return getattr(params, field).value if params.HasField(field) else default

    options = BatchingOptions(
        max_batch_size=value("max_batch_size", 1000),
        batch_timeout_micros=value("batch_timeout_micros", 0),
        max_enqueued_batches=value("max_enqueued_batches", 100),
        num_batch_threads=value("num_batch_threads", 4),
        allowed_batch_sizes=tuple(params.allowed_batch_sizes),
    )
    sizes = options.allowed_batch_sizes
    if min(options.max_batch_size, options.max_enqueued_batches, options.num_batch_threads) < 1:
        raise ConfigError(f"{path}: batch sizes, queue length and threads must be positive")
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != options.max_batch_size):
        raise ConfigError(
            f"{path}: allowed_batch_sizes must increase and end with max_batch_size "
            f"({options.max_batch_size}), got {list(sizes)}"
        )
    return options


def load_monitoring_config(path: Path) -> MonitoringConfig:
    return _parse(path, MonitoringConfig())
