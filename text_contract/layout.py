"""The export layout TF Serving reads, and the files that travel inside it:

    <models_dir>/<model name>/<version>/saved_model.pb, variables/
                                       /assets.extra/tokenizer.json
                                       /assets.extra/tf_serving_warmup_requests

TF Serving serves the folders whose names are numbers and ignores ``assets.extra/``
for inference, so the tokenizer contract travels with each version unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path

# The tokenizer contract of a version (see text_contract.tokenizer).
TOKENIZER_FILE = "assets.extra/tokenizer.json"
# TF Serving replays the PredictionLog records of this TFRecord file against every
# version it loads, before marking it AVAILABLE (its "SavedModel warmup").
WARMUP_REQUESTS_FILE = "assets.extra/tf_serving_warmup_requests"

MODEL_NAME_PREFIX = "imdb_"
# Public model names (what API clients choose) -> the served names in models.config.
SERVED_MODELS = {public: MODEL_NAME_PREFIX + public for public in ("lstm", "simple_rnn")}

_VERSION_NAME = re.compile(r"[0-9]+")


def version_dirs(model_dir: Path) -> dict[int, Path]:
    """The version folders of one model, by version number, in ascending order."""
    if not model_dir.is_dir():
        return {}
    found = {
        int(child.name): child
        for child in model_dir.iterdir()
        if _VERSION_NAME.fullmatch(child.name) and child.is_dir()
    }
    return dict(sorted(found.items()))
