"""Scored rows as the HTTP API's prediction objects, written as JSON Lines or CSV.

A result is the row's place (``source``, ``line``) followed by the gateway's own
``Prediction`` as its ``to_json`` renders it, so a scored file and an API answer carry
the same fields with the same names and meaning. A job scores with one version
throughout, named or resolved when it starts, so its ``arm`` is ``pinned``, as for an
API request that names its version.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields

from serving.batch.rows import Row
from serving.gateway.data_plane import Prediction
from text_contract.tokenizer import EncodedText

OUTPUT_FORMATS = ("jsonl", "csv")
ARM = "pinned"
PLACE_FIELDS = ("source", "line")
# The CSV columns: the place, then every field of a prediction without an explanation.
CSV_COLUMNS = (*PLACE_FIELDS, *(field.name for field in fields(Prediction) if field.name != "explanation"))


def scored(row: Row, probability: float, encoded: EncodedText, model_name: str, version: int) -> dict:
    """The result of one row, built as the gateway builds a prediction."""
    prediction = Prediction.of(probability, encoded, model_name=model_name, version=version, arm=ARM)
    return {"source": row.source, "line": row.line, **prediction.to_json()}


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)


def csv_line(record: dict) -> str:
    """One CSV record without its line ending (the writer adds it)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([record[column] for column in CSV_COLUMNS])
    return buffer.getvalue()


def csv_header() -> str:
    return ",".join(CSV_COLUMNS)
