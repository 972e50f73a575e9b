"""Tokenizers built from the contract file exported inside each model version.

The gateway reads ``<models_dir>/<model_name>/<version>/assets.extra/tokenizer.json``
from the same folder the model server serves, so the ids it sends always follow
the vocabulary of the version that will run them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from serving.gateway.errors import ModelServerUnavailable
from text_contract.tokenizer import Tokenizer, TokenizerContract

log = logging.getLogger(__name__)


class Tokenizers:
    """Each served version's tokenizer, read from its contract once."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self._tokenizers: dict[tuple[str, int], Tokenizer] = {}
        self._lock = threading.Lock()

    def tokenizer(self, model_name: str, version: int) -> Tokenizer:
        key = (model_name, version)
        tokenizer = self._tokenizers.get(key)
        if tokenizer is not None:
            return tokenizer
        with self._lock:
            if key not in self._tokenizers:
                self._tokenizers[key] = self._load(model_name, version)
            return self._tokenizers[key]

    def _load(self, model_name: str, version: int) -> Tokenizer:
        version_dir = self.models_dir / model_name / str(version)
        try:
            return Tokenizer(TokenizerContract.read(version_dir))
        except (OSError, ValueError, KeyError) as error:
            # The path stays in the log; clients only learn which version is affected.
            log.error("cannot read the tokenizer contract in %s: %s", version_dir, error)
            raise ModelServerUnavailable(
                f"{model_name} version {version}: its tokenizer contract is not available to the gateway"
            ) from None
