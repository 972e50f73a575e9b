"""Two versions of one model that answer differently, for rollouts: version 2 is version 1's
weights with its vocabulary reversed, so the same network reads other ids for the same words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from text_contract.layout import TOKENIZER_FILE, WARMUP_REQUESTS_FILE

MODEL_NAME = "imdb_lstm"
# Both versions loaded (a rollout needs them), with TF Serving version labels.
MODELS_CONFIG = f"""
model_config_list {{
  config {{
    name: "{MODEL_NAME}"
    base_path: "/models/{MODEL_NAME}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
"""


def serve_two_versions(version_dir: Path, served: Path) -> Path:
    """Versions 1 and 2 of ``MODEL_NAME`` under ``served`` from ``version_dir``; returns the
    model config file for the model server (``--base_path_map /models=<served>``)."""
    shutil.copytree(version_dir, served / MODEL_NAME / "1")
    shutil.copytree(version_dir, served / MODEL_NAME / "2")
    contract_file = served / MODEL_NAME / "2" / TOKENIZER_FILE
    contract = json.loads(contract_file.read_text(encoding="utf-8"))
    contract["vocabulary"] = contract["vocabulary"][::-1]
    contract_file.write_text(json.dumps(contract), encoding="utf-8")
    config = served.parent / f"{served.name}.config"
    config.write_text(MODELS_CONFIG, encoding="utf-8")
    return config


def slow_to_load(version_dir: Path, repeats: int) -> None:
    """Make ``version_dir`` take longer to load: its warmup requests, run before the version
    turns AVAILABLE, are repeated ``repeats`` times (TFRecord files concatenate; the model
    server reads at most 1,000 records)."""
    warmup = version_dir / WARMUP_REQUESTS_FILE
    warmup.write_bytes(warmup.read_bytes() * repeats)
