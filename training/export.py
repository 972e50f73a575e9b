"""Writing a trained model as a new SavedModel version in TF Serving's layout.

``<base>/<version>/saved_model.pb + variables/ + assets.extra/`` (the tokenizer
contract ``tokenizer.json`` and TF Serving's warmup requests).
The version is assembled in a hidden sibling folder (TF Serving only looks at
numeric folder names) and renamed into place, so a half-written version is never
visible to a model server polling ``<base>``.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import keras

from text_contract.layout import version_dirs
from text_contract.signature import SIGNATURE_NAME
from text_contract.tokenizer import TokenizerContract
from training.signature import input_spec, serving_function
from training.warmup import warmup_shapes, write_warmup_requests


def export_version(
    model: keras.Model, contract: TokenizerContract, base: Path, *, xla: bool = True, trim: bool = True
) -> Path:
    """Export ``model`` as version ``max(existing) + 1`` under ``base``; return its folder.

    ``xla=False`` exports a signature that runs without XLA, for runtimes started
    without ``--xla_cpu_compilation_enabled``; ``trim=False`` one that runs all
    maxlen steps (the benchmarks' reference).
    """
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{uuid.uuid4().hex}"
    try:
        _write_saved_model(model, contract.maxlen, staging, xla, trim)
        contract.write(staging)
        write_warmup_requests(staging, base.name, contract.maxlen, warmup_shapes(contract.maxlen, xla and trim))
        while True:
            target = base / str(max(version_dirs(base), default=0) + 1)
            try:
                # Fails if another exporter took this number meanwhile: try the next one.
                staging.rename(target)
                return target
            except OSError:
                if not target.is_dir():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_saved_model(model: keras.Model, maxlen: int, path: Path, xla: bool, trim: bool) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_NAME,
        fn=serving_function(model, maxlen, xla=xla, trim=trim),
        input_signature=[input_spec(maxlen)],
    )
    archive.write_out(str(path), verbose=False)
