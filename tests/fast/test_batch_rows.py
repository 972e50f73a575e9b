"""Input rows of the batch pipeline: every line or record becomes a row to score or a bad
row with its reason and line, whatever the file holds (serving/batch/rows.py)."""

from __future__ import annotations

import io

import pytest
from apache_beam.options.pipeline_options import StandardOptions
from hypothesis import given
from hypothesis import strategies as st

from serving.batch.pipeline import pipeline_options
from serving.batch.rows import BadRow, Row, format_of, read_rows


def rows(data: bytes, fmt: str, column: str = "text") -> list[Row | BadRow]:
    return list(read_rows(io.BytesIO(data), "in", fmt, column))


def places(items: list[Row | BadRow]) -> list[tuple[int, str]]:
    return [(item.line, item.text if isinstance(item, Row) else f"BAD: {item.reason}") for item in items]


@pytest.mark.parametrize(("path", "fmt"), [
    ("a.csv", "csv"), ("gs://b/part-1.CSV.gz", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson.zst", "jsonl"),
    ("a.txt", "text"), ("reviews", "text"), ("a.json", "text"),
])
def test_the_format_follows_the_file_name_through_compression(path, fmt):
    assert format_of(path) == fmt


def test_text_lines_each_a_row_blank_and_undecodable_ones_refused():
    assert places(rows(b"\xef\xbb\xbffirst\r\n\n  \t\nlast \xff\nend", "text")) == [
        (1, "first"), (2, "BAD: the text is empty or whitespace only"),
        (3, "BAD: the text is empty or whitespace only"),
        (4, "BAD: not UTF-8 (invalid start byte at byte 5)"), (5, "end"),
    ]


def test_json_lines_refused_with_what_is_wrong():
    data = b'{"review": "good", "n": 1}\n{"review": 1.5}\n{"review": true}\n{}\n"text"\n{"review": [1]\n'
    assert places(rows(data, "jsonl", column="review")) == [
        (1, "good"), (2, "BAD: field 'review' is a number, not a string"),
        (3, "BAD: field 'review' is a boolean, not a string"), (4, "BAD: no field 'review'"),
        (5, "BAD: not a JSON object (got a string)"), (6, "BAD: not JSON (Expecting ',' delimiter: column 15)"),
    ]


def test_csv_records_keep_their_first_line_and_the_reader_goes_on_after_a_malformed_one():
    data = b'id,text\n1,"two\nlines"\n2,"bad"quote\n3,"fine, with a comma"\n\n4,"open quote\n'
    assert places(rows(data, "csv")) == [
        (2, "two\nlines"), (4, "BAD: malformed CSV (',' expected after '\"')"), (5, "fine, with a comma"),
        (6, "BAD: empty line (expected a CSV record)"), (7, "BAD: malformed CSV (unexpected end of data)"),
    ]
    assert [item.raw for item in rows(data, "csv") if isinstance(item, BadRow)] == [
        '2,"bad"quote', "", '4,"open quote']


def test_every_csv_record_is_refused_when_the_header_lacks_the_column():
    assert places(rows(b"id,review\n1,a\n2,b\n", "csv")) == [
        (2, "BAD: no column 'text' (columns: id, review)"), (3, "BAD: no column 'text' (columns: id, review)")]


def test_an_empty_file_has_no_rows():
    assert rows(b"", "csv") == rows(b"", "jsonl") == rows(b"", "text") == []


@given(st.lists(st.binary(max_size=40), max_size=20), st.sampled_from(["text", "jsonl", "csv"]))
def test_any_bytes_give_one_outcome_per_line_in_order(lines, fmt):
    data = b"\n".join(line.replace(b"\n", b"") for line in lines)
    items = rows(data, fmt)
    numbers = [item.line for item in items]
    assert numbers == sorted(set(numbers))  # each row once, in file order
    if fmt != "csv":  # a CSV record may span lines, and its header is no row
        lines_in_file = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
        assert numbers == list(range(1, lines_in_file + 1))


def test_the_local_runner_is_pinned_unless_one_is_named():
    assert pipeline_options([]).view_as(StandardOptions).runner == "FnApiRunner"
    assert pipeline_options(["--runner", "FlinkRunner"]).view_as(StandardOptions).runner == "FlinkRunner"
