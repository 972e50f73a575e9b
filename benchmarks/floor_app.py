"""The framework floor: a Flask app that only parses the request body and returns a
small JSON, served by the gateway's HTTP server with the gateway's own settings. What
the gateway's code adds per request is its CPU per request minus this app's.

    python -m serving.gateway.api.http_server --app benchmarks.floor_app:app
"""

from __future__ import annotations

import json

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.post("/v1/sentiment")
def predict() -> Response:
    body = json.loads(request.get_data())
    prediction = {"positive_probability": 0.5, "label": "positive", "num_chars": len(body["text"])}
    return jsonify(predictions=[prediction])
