"""Markdown tables and figures for the rendered blocks (benchmarks.report)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def count(value: float) -> str:
    """A count or rate as the docs write it: 1,073."""
    return f"{value:,.0f}"


def ms(value: float | None) -> str:
    """Milliseconds to three significant figures: 0.87, 6.4, 155, 1,318."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def change(after: float, before: float) -> str:
    return f"{after / before - 1:+.0%}"
