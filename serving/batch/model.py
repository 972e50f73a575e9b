"""The exported version's serving signature as a Beam ``ModelHandler``.

Beam's TensorFlow handler loads models with ``tf.keras``, which cannot load these
SavedModels under Keras 3; this one loads the version as the model server does
(``tf.saved_model.load`` through ``LoadedVersion``) and calls its serving signature
with the token-id matrix the gateway would send, built by the gateway's tokenizer from
the contract exported inside the version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from serving.batch.output import scored
from serving.batch.rows import Row
from text_contract.layout import SERVED_MODELS, version_dirs
from text_contract.signature import INPUT_NAME, OUTPUT_NAME, SIGNATURE_NAME
from text_contract.tokenizer import Tokenizer, TokenizerContract

MIN_BATCH_SIZE = 64
MAX_BATCH_SIZE = 256


class ModelVersionError(ValueError):
    """The model or version to score with does not exist, or cannot be read."""


@dataclass(frozen=True)
class ModelVersion:
    model_name: str  # the served name, e.g. imdb_lstm
    version: int
    path: Path


def resolve(models_dir: Path, model: str, version: int | None) -> ModelVersion:
    """The version folder of ``model`` (its public name) under ``models_dir``: ``version``, or
    the newest one. Resolved once, when the job starts, so every worker scores with the same."""
    if model not in SERVED_MODELS:
        raise ModelVersionError(f"unknown model {model!r}; choose one of {sorted(SERVED_MODELS)}")
    model_name = SERVED_MODELS[model]
    versions = version_dirs(models_dir / model_name)
    if not versions:
        raise ModelVersionError(f"no exported version of {model} under {models_dir / model_name}")
    chosen = max(versions) if version is None else version
    if chosen not in versions:
        raise ModelVersionError(f"{model} has no version {chosen} under {models_dir / model_name} "
                                f"(versions: {', '.join(map(str, versions))})")
    return ModelVersion(model_name, chosen, versions[chosen].resolve())


class ServingSignature:
    """One loaded version's serving signature: int32 ids ``[rows, maxlen]`` -> probabilities."""

    def __init__(self, version: ModelVersion) -> None:
        # TensorFlow loads in the workers only: the job's launcher never needs its runtime.
        from serving.model_server.servable import LoadedVersion

        # XLA on: the shipped export's signature is compiled, and TF Serving's off switch
        # guards a server's start-up, not a job's.
        self._loaded = LoadedVersion(version.model_name, version.version, version.path, xla_enabled=True)
        self._signature = self._loaded.signature(SIGNATURE_NAME)

    def predict(self, ids: np.ndarray) -> np.ndarray:
        self._signature.check_inputs({INPUT_NAME: ids})
        outputs = self._loaded.run(self._signature, {INPUT_NAME: ids})
        return outputs[OUTPUT_NAME].reshape(-1)


class SignatureHandler(ModelHandler[Row, dict, ServingSignature]):
    """Rows in, the API's prediction objects out, in batches of 64-256 rows.

    The tokenizer is read from the version's contract when the job is built and travels
    with the handler; the SavedModel is loaded once per worker process (or once per
    machine with ``share_across_processes``, the workers calling it through a proxy)."""

    def __init__(self, version: ModelVersion, *, min_batch_size: int = MIN_BATCH_SIZE,
                 max_batch_size: int = MAX_BATCH_SIZE, share_across_processes: bool = False) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size,
                         large_model=share_across_processes)
        self._version = version
        try:
            self._tokenizer = Tokenizer(TokenizerContract.read(version.path))
        except (OSError, ValueError, KeyError) as error:
            raise ModelVersionError(f"{version.path}: cannot read its tokenizer contract ({error})") from None

    def load_model(self) -> ServingSignature:
        return ServingSignature(self._version)

    def run_inference(self, batch: Sequence[Row], model: ServingSignature,
                      inference_args: dict[str, Any] | None = None) -> Iterable[dict]:
        ids, encoded = self._tokenizer.encode_batch([row.text for row in batch])
        probabilities = model.predict(ids).tolist()
        name, version = self._version.model_name, self._version.version
        return [scored(row, probability, item, name, version)
                for row, probability, item in zip(batch, probabilities, encoded)]

    def get_num_bytes(self, batch: Sequence[Row]) -> int:
        return sum(len(row.text) for row in batch)

    def get_metrics_namespace(self) -> str:
        return "sentiment_batch"
