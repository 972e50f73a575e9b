"""Figures in the docs are rendered from their results files, never edited by hand: a
rendered block that differs from what its file gives fails here."""

from __future__ import annotations

import json
from pathlib import Path

from harness.attack_report import BEGIN, END, rendered_into

ROOT = Path(__file__).resolve().parents[2]


def test_the_attack_table_in_operations_md_is_the_published_results_file():
    results = json.loads((ROOT / "docs/results/attacks.json").read_text())
    assert {"date", "commit", "command"} <= set(results) and results["attacks"]
    document = (ROOT / "docs/operations.md").read_text()
    assert document.count(BEGIN) == document.count(END) == 1
    assert document == rendered_into(document, results), \
        "docs/operations.md's attack table differs from docs/results/attacks.json: run " \
        "python -m harness.attack_report docs/results/attacks.json --into docs/operations.md"
