"""Figures in the docs are rendered from their results files, never edited by hand: a
rendered block that differs from what its file gives fails here, and so does a
published results file that does not name its run."""

from __future__ import annotations

import json

import pytest

from benchmarks.report import BLOCK, BLOCKS, PAGES, RESULTS_DIR, header_problems, rendered

RESULTS_FILES = sorted(RESULTS_DIR.glob("*.json"))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_rendered_block_is_what_its_results_file_gives(page):
    assert rendered(page) == page.read_text(encoding="utf-8"), \
        f"{page.name}: a rendered block differs from docs/results: run python -m benchmarks.report"


@pytest.mark.parametrize("results", RESULTS_FILES, ids=lambda path: path.name)
def test_every_published_results_file_names_its_date_commit_and_command(results):
    assert header_problems(json.loads(results.read_text(encoding="utf-8"))) == []


def test_every_block_is_rendered_somewhere_and_its_file_is_published():
    used = {match["name"] for page in PAGES for match in BLOCK.finditer(page.read_text(encoding="utf-8"))}
    assert used == set(BLOCKS)
    assert all((RESULTS_DIR / block.results_file).exists() for block in BLOCKS.values())


def test_a_block_edited_by_hand_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- results: attacks -->\n| a figure typed by hand |\n<!-- /results: attacks -->\n")
    assert "a figure typed by hand" not in rendered(page)
    assert "Rendered from [`attacks.json`]" in rendered(page)
