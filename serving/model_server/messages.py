"""TF Serving's metadata and status messages, built once for both APIs (REST prints them as JSON)."""

from __future__ import annotations

from serving.model_server.manager import VersionStatus
from serving.model_server.servable import LoadedVersion
from serving.tfs_apis import get_model_metadata_pb2, get_model_status_pb2

_STATE_CODES = dict(get_model_status_pb2.ModelVersionStatus.State.items())


def signature_def_map(loaded: LoadedVersion) -> get_model_metadata_pb2.SignatureDefMap:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, definition in loaded.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(definition)
    return signature_map


def status_response(statuses: dict[int, VersionStatus]) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, status in sorted(statuses.items()):
        entry = response.model_version_status.add(version=number, state=_STATE_CODES[status.state])
        entry.status.error_code = 2 if status.error else 0
        entry.status.error_message = status.error
    return response
