"""Shared helpers of the benchmark scripts: the development corpora as id/text lists (read from
../shared/bench, never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "bench"
DATASETS = {"koblex-dev": BENCH / "koblex-dev", "koblex-fulllaw-dev": BENCH / "koblex-fulllaw-dev"}


def passage_text(doc: dict) -> str:
    """What gets indexed for a BEIR document: its title (law, article) and its text."""
    return f"{doc['title']}\n{doc['text']}" if doc.get("title") else doc["text"]
