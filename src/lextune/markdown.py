"""Markdown tables, as comparison.md, targeted.md and piped CLI tables write them."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table: the first column left-aligned, the others right-aligned."""
    return ["| " + " | ".join(headers) + " |", "|---|" + "---:|" * (len(headers) - 1),
            *("| " + " | ".join(row) + " |" for row in rows)]
