"""Texts in and predictions out for the CLI: plain text lines, JSON Lines or CSV, by the file's suffix."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# The columns of a CSV of predictions, after the input row number; `error` is empty on success.
PREDICTION_COLUMNS = ("label", "positive_probability", "model_name", "model_version", "num_tokens",
                      "num_out_of_vocabulary", "truncated", "no_known_words")


class InputError(ValueError):
    """The input file cannot be read as the texts it should hold; the message says where."""


def read_texts(path: Path, column: str = "text") -> list[str]:
    """One text per non-empty line (``.txt`` or anything else), per JSON object's ``column``
    field (``.jsonl``), or per row's ``column`` (``.csv``, with a header row)."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read it ({error})") from error
    if path.suffix == ".jsonl":
        return [_field(line, number, column, path) for number, line in enumerate(content.splitlines(), 1)
                if line.strip()]
    if path.suffix == ".csv":
        rows = csv.DictReader(content.splitlines())
        if column not in (rows.fieldnames or []):
            raise InputError(f"{path}: no column {column!r} (columns: {', '.join(rows.fieldnames or [])})")
        return [row[column] for row in rows]
    return [line for line in content.splitlines() if line.strip()]


def _field(line: str, number: int, column: str, path: Path) -> str:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}:{number}: not JSON ({error.msg})") from None
    if not isinstance(value, dict) or not isinstance(value.get(column), str):
        raise InputError(f"{path}:{number}: expected an object with a string field {column!r}")
    return value[column]


def write_predictions(path: Path, predictions: list[dict | None], errors: list[dict]) -> None:
    """Predictions in input order: a line per input row (``.jsonl``), a CSV row per input row
    (``.csv``), or one JSON document; failed rows carry their request's error."""
    failed = {row: error for error in errors for row in range(error["rows"][0], error["rows"][1] + 1)}
    with path.open("w", encoding="utf-8", newline="") as out:
        if path.suffix == ".jsonl":
            for row, prediction in enumerate(predictions):
                entry = prediction if prediction is not None else {"error": _brief(failed[row])}
                out.write(json.dumps({"row": row, **entry}) + "\n")
        elif path.suffix == ".csv":
            writer = csv.writer(out)
            writer.writerow(("row", *PREDICTION_COLUMNS, "error"))
            for row, prediction in enumerate(predictions):
                if prediction is None:
                    error = failed[row]
                    writer.writerow((row, *[""] * len(PREDICTION_COLUMNS), f"{error['code']}: {error['message']}"))
                else:
                    writer.writerow((row, *[prediction[name] for name in PREDICTION_COLUMNS], ""))
        else:
            document: dict = {"predictions": predictions}
            if errors:
                document["errors"] = errors
            json.dump(document, out, indent=2)


def _brief(error: dict) -> dict:
    return {"code": error["code"], "message": error["message"]}
