"""The reference a Keras tutorial reader would write: Flask + ``model.predict`` per request.

    python -m benchmarks.naive_server VERSION_DIR PORT

The exported SavedModel is wrapped in a Keras model (``TFSMLayer``) so the same
weights as the served version answer, through ``model.predict``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

from text_contract.tokenizer import Tokenizer, TokenizerContract  # noqa: E402


def main() -> None:
    version_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    model = keras.Sequential([
        keras.Input(shape=(500,), dtype="int32"),
        keras.layers.TFSMLayer(str(version_dir), call_endpoint="serving_default"),
    ])
    tokenizer = Tokenizer(TokenizerContract.read(version_dir))
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        ids, _ = tokenizer.encode_batch([request.get_json()["text"]])
        outputs = model.predict(ids, verbose=0)
        return jsonify(positive_probability=float(outputs["positive_probability"][0, 0]))

    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
