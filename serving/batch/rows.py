"""Input files -> rows to score, or bad rows with the reason they cannot be scored.

Every line of a text or JSON Lines file, and every record of a CSV file after its header,
is one input row: nothing is skipped silently. Rows are numbered by the line they start
on (1-based; the CSV header is line 1), so a result or a bad row points back at its source.
Files are read as bytes and decoded row by row: one badly encoded row is a bad row, not a
failed file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

FORMATS = ("text", "csv", "jsonl")
# Beam decompresses these by their suffix (CompressionTypes.AUTO); the format is the suffix before.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".deflate", ".zst", ".lzma")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Row:
    """A text to score and where it came from."""

    source: str  # the file's path or URL
    line: int
    text: str


@dataclass(frozen=True)
class BadRow:
    """An input row that cannot be scored, and why."""

    source: str
    line: int
    reason: str
    raw: str  # the row as read (undecodable bytes replaced), for whoever fixes the input

    def to_json(self) -> dict:
        return {"source": self.source, "line": self.line, "reason": self.reason, "raw": self.raw}


def format_of(path: str) -> str:
    """The input format a file name implies: ``.csv`` and ``.jsonl``/``.ndjson`` (also
    compressed, e.g. ``.csv.gz``); anything else is text, one review a line."""
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "text"


def read_rows(stream: BinaryIO, source: str, fmt: str, column: str) -> Iterator[Row | BadRow]:
    """The rows of one file in ``fmt``; ``column`` names the CSV column or JSON field of the text."""
    if fmt == "csv":
        yield from _csv_rows(stream, source, column)
        return
    parse = _json_row if fmt == "jsonl" else _text_row
    for number, raw in enumerate(_lines(stream), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield BadRow(source, number, f"not UTF-8 ({error.reason} at byte {error.start})", _readable(raw))
            continue
        yield parse(source, number, line.removeprefix(_BOM) if number == 1 else line, column)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines without their ending; readline() because Beam's compressed files are not iterators."""
    for raw in iter(stream.readline, b""):
        yield raw.removesuffix(b"\n").removesuffix(b"\r")


def _readable(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _text_row(source: str, number: int, line: str, column: str) -> Row | BadRow:
    if not line.strip():
        return BadRow(source, number, "the text is empty or whitespace only", line)
    return Row(source, number, line)


def _json_row(source: str, number: int, line: str, column: str) -> Row | BadRow:
    if not line.strip():
        return BadRow(source, number, "empty line (expected a JSON object)", line)
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return BadRow(source, number, f"not JSON ({error.msg}: column {error.colno})", line)
    if not isinstance(value, dict):
        return BadRow(source, number, f"not a JSON object (got {_json_kind(value)})", line)
    if column not in value:
        return BadRow(source, number, f"no field {column!r}", line)
    text = value[column]
    if not isinstance(text, str):
        return BadRow(source, number, f"field {column!r} is {_json_kind(text)}, not a string", line)
    if not text.strip():
        return BadRow(source, number, "the text is empty or whitespace only", line)
    return Row(source, number, text)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a string"


class _Consumed:
    """The decoded lines the CSV reader has taken since the last record: that record's raw text."""

    def __init__(self, stream: BinaryIO) -> None:
        self._lines = iter(stream.readline, b"")
        self._first = True
        self.taken: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        # surrogateescape carries undecodable bytes through the reader; such a row is refused later.
        line = next(self._lines).decode("utf-8", errors="surrogateescape")
        if self._first:
            line, self._first = line.removeprefix(_BOM), False
        self.taken.append(line)
        return line

    def record_text(self) -> str:
        text = "".join(self.taken).rstrip("\r\n")
        self.taken.clear()
        return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _csv_rows(stream: BinaryIO, source: str, column: str) -> Iterator[Row | BadRow]:
    consumed = _Consumed(stream)
    reader = csv.reader(consumed, strict=True)
    header: list[str] | None = None
    start = 1  # the line the next record starts on
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield BadRow(source, start, f"malformed CSV ({error})", consumed.record_text())
            start = reader.line_num + 1
            continue
        raw, number, start = consumed.record_text(), start, reader.line_num + 1
        if header is None:
            header = record
            continue
        yield _csv_row(source, number, raw, header, record, column)


def _csv_row(source: str, number: int, raw: str, header: list[str], record: list[str], column: str) -> Row | BadRow:
    if column not in header:
        return BadRow(source, number, f"no column {column!r} (columns: {', '.join(header)})", raw)
    if not record:
        return BadRow(source, number, "empty line (expected a CSV record)", raw)
    if len(record) != len(header):
        fields = f"{len(record)} field" + ("" if len(record) == 1 else "s")
        return BadRow(source, number, f"{fields} where the header has {len(header)}", raw)
    text = record[header.index(column)]
    if not _is_utf8(text):
        return BadRow(source, number, f"column {column!r} is not UTF-8", raw)
    if not text.strip():
        return BadRow(source, number, "the text is empty or whitespace only", raw)
    return Row(source, number, text)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
