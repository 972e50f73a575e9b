"""Every relative link in the README, the changelog and docs/*.md leads somewhere: to a file
or folder of the repository and, for a page's section, to a heading that page has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated id numbered from -1."""
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        numbered, count = slug, 0
        while numbered in found:
            count += 1
            numbered = f"{slug}-{count}"
        found.add(numbered)
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked here
            continue
        path, _, section = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file or folder")
        elif section and linked.suffix == ".md" and section not in anchors(linked):
            broken.append(f"{target}: no such section")
    return broken


def test_every_relative_link_in_the_docs_resolves():
    broken = {page.relative_to(ROOT).as_posix(): links for page in pages() if (links := broken_links(page))}
    assert not broken


def test_a_missing_file_or_section_is_reported(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## A section: with `code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n[ok](other.md#a-section-with-code) [ok](#here) [ok](https://example.com/x)\n"
        "[gone](deploy/edge/) [wrong](other.md#a-section) [wrong](#there)\n"
        "```\n[in a code block](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "deploy/edge/: no such file or folder", "other.md#a-section: no such section", "#there: no such section"]
