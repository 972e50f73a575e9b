"""The OpenAPI document of the running gateway.

``openapi.yaml`` holds what never changes (routes, shapes, descriptions); what the
settings and the model server decide is written into it here, from the same values the
request path uses: the limits, the model names and the default, the versions available
now, the error codes. So the document served at ``/openapi.yaml`` and shown at ``/docs``
cannot drift from what the gateway does.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from importlib import resources
from typing import Any

import yaml

from serving.gateway.data_plane import DEFAULT_TOP_K, MAX_TOP_K, ModelInfo
from serving.gateway.errors import ERROR_CODES
from serving.gateway.settings import Settings

_TEMPLATE: dict[str, Any] = yaml.safe_load(
    resources.files("serving.gateway.api").joinpath("openapi.yaml").read_text("utf-8"))


def _error_table() -> str:
    rows = "\n".join(f"| `{code}` | {status} | {meaning} |" for code, (status, meaning) in ERROR_CODES.items())
    return f"| code | HTTP | meaning |\n|---|---|---|\n{rows}"


def openapi_document(settings: Settings, models: list[ModelInfo] | None, open_paths: Collection[str]) -> dict[str, Any]:
    """The document for ``settings``; ``models`` (None when the model server cannot say)
    adds the versions available now; ``open_paths`` take no key."""
    document = copy.deepcopy(_TEMPLATE)
    document["info"]["description"] += (
        f"\n\nLimits: at most {settings.max_texts} texts per request "
        f"({settings.max_explained_texts} with explain), {settings.max_text_chars} characters per text, "
        f"{settings.max_body_bytes} bytes per body, {settings.max_in_flight} predictions in progress per "
        f"gateway process.\n\nErrors:\n\n{_error_table()}\n"
    )
    schemas = document["components"]["schemas"]
    schemas["Text"]["maxLength"] = settings.max_text_chars
    request = schemas["PredictRequest"]["properties"]
    request["texts"]["maxItems"] = settings.max_texts
    schemas["ExplainedTexts"]["properties"]["texts"]["maxItems"] = settings.max_explained_texts
    request["model"]["enum"] = [*settings.models, None]
    request["model"]["description"] = f"Defaults to {settings.default_model!r} when absent or null."
    request["explain_top_k"].update(maximum=MAX_TOP_K, description=f"Words per explanation (default {DEFAULT_TOP_K}).")
    if models is not None:
        available = "; ".join(
            f"{m.model}: {', '.join(str(v) for v in m.available) or 'none'}"
            for m in models)
        request["version"]["description"] += f" Available now: {available}."
    refused = "refuses such texts with 422" if settings.refuse_no_known_words else "answers such texts"
    schemas["Prediction"]["properties"]["no_known_words"]["description"] = (
        "No word of the text is in the vocabulary: the probability is the model's guess for an empty input "
        f"and says nothing about the text. This gateway {refused} (GATEWAY_REFUSE_NO_KNOWN_WORDS).")
    schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"] = list(ERROR_CODES)
    document["components"]["parameters"]["V2Model"]["schema"]["enum"] = list(settings.models)
    v2_input = schemas["V2InferRequest"]["properties"]["inputs"]["items"]["properties"]
    v2_input["data"]["maxItems"] = settings.max_texts
    v2_input["shape"]["items"]["maximum"] = settings.max_texts
    if settings.api_keys_file:
        _require_keys(document, open_paths)
    return document


def _require_keys(document: dict[str, Any], open_paths: Collection[str]) -> None:
    document["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path, operations in document["paths"].items():
        if path in open_paths:
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            v2 = path.startswith("/v2")
            operation["responses"]["401"] = {"$ref": "#/components/responses/V2Error" if v2 else "#/components/responses/Error"}
