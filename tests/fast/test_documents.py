"""The OpenAPI document follows the running settings; the error catalogue names every code
a client can meet; the demo and /docs pages and their assets are served from the package."""

import re

import yaml

from harness.processes import ROOT
from serving.gateway import errors
from serving.gateway.api.http_app import _HTTP_ERROR_CODES, create_app
from serving.gateway.api.responses import INTERNAL_ERROR
from serving.gateway.data_plane import DataPlane
from serving.gateway.errors import ERROR_CODES, GatewayError


def document(http) -> dict:
    response = http.get("/openapi.yaml")
    assert response.status_code == 200 and response.mimetype == "application/yaml"
    return yaml.safe_load(response.get_data(as_text=True))


def test_the_document_carries_the_running_limits_models_and_versions(settings, model_client):
    custom = settings.with_changes(max_texts=5, max_text_chars=321, max_explained_texts=3,
                                   models={"fast": "imdb_simple_rnn"}, default_model="fast")
    with create_app(custom, DataPlane(custom, client=model_client)).test_client() as http:
        model_client.versions["imdb_simple_rnn"] = {4: "AVAILABLE", 5: "LOADING"}
        spec = document(http)
        assert http.get("/openapi.json").get_json() == spec
    schemas = spec["components"]["schemas"]
    request = schemas["PredictRequest"]["properties"]
    assert request["texts"]["maxItems"] == 5 and schemas["Text"]["maxLength"] == 321
    assert schemas["ExplainedTexts"]["properties"]["texts"]["maxItems"] == 3
    assert request["model"]["enum"] == ["fast", None] and "'fast'" in request["model"]["description"]
    assert "Available now: fast: 4." in request["version"]["description"]
    assert "at most 5 texts per request (3 with explain), 321 characters" in spec["info"]["description"]


def test_the_document_is_served_while_the_model_server_is_away(http, model_client):
    model_client.failure = errors.ModelServerUnavailable("the model server is unavailable")
    spec = document(http)
    assert "Available now" not in spec["components"]["schemas"]["PredictRequest"]["properties"]["version"]["description"]


def test_every_error_code_a_client_can_meet_is_in_the_catalogue_and_the_document(http):
    raised = {cls.code: cls.http_status for cls in vars(errors).values()
              if isinstance(cls, type) and issubclass(cls, GatewayError) and cls is not GatewayError}
    answered_by_the_app = {code: status for status, code in _HTTP_ERROR_CODES.items()}
    literal = set(re.findall(r'"code": "(\w+)"', (ROOT / "serving/gateway/api/body_limit.py").read_text()))
    literal |= set(re.findall(r'error_response\(\d+, "(\w+)"', (ROOT / "serving/gateway/api/http_app.py").read_text()))
    literal |= {INTERNAL_ERROR[0]}  # a failure of the gateway itself
    literal |= {"bad_request"}  # any other HTTP error Werkzeug raises
    edge_config = "".join(path.read_text() for path in (ROOT / "deploy" / "edge").glob("*.conf"))
    edge = dict((code, int(status)) for status, code in re.findall(
        r"return (\d+) '\{\"error\": \{\"code\": \"(\w+)\"", edge_config))
    for code, status in {**raised, **answered_by_the_app, **edge}.items():
        assert ERROR_CODES.get(code, (None,))[0] == status, code
    assert set(ERROR_CODES) == set(raised) | set(answered_by_the_app) | literal | set(edge)
    spec = document(http)
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"] == list(ERROR_CODES)
    for code in ERROR_CODES:
        assert f"`{code}`" in spec["info"]["description"]


def test_the_demo_page_and_the_api_docs_are_served_with_their_assets(http):
    demo = http.get("/")
    assert demo.status_code == 200 and demo.mimetype == "text/html"
    page = demo.get_data(as_text=True)
    assert '<label for="review">' in page and 'src="/static/demo.js"' in page
    assert http.get("/static/demo.js").status_code == 200 and http.get("/static/demo.css").status_code == 200
    docs = http.get("/docs").get_data(as_text=True)
    for asset in re.findall(r'(?:href|src)="(/[^"]+)"', docs):
        response = http.get(asset)
        assert response.status_code == 200 and len(response.data) > 100, asset
    assert http.get("/docs/assets/../../http_app.py").status_code == 404
    # Only what the page loads: not the package's stock index.html, its OAuth2 page or source maps.
    for vendor_file in ("index.html", "oauth2-redirect.html", "swagger-ui-bundle.js.map", "swagger-initializer.js"):
        assert http.get(f"/docs/assets/{vendor_file}").status_code == 404, vendor_file
