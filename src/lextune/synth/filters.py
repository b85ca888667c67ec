"""Filters for synthetic queries: duplicates, length, copying, round-trip consistency."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from lextune.schema import SynthQuery

_NORM = re.compile(r"[\s\W_]+")


def _norm(text: str) -> str:
    return _NORM.sub("", text.lower())


def _shingles(text: str, n: int = 3) -> set[str]:
    t = _norm(text)
    return {t[i : i + n] for i in range(max(1, len(t) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def copy_ratio(query: str, passage: str, n: int = 3) -> float:
    """Share of the query's character n-grams that appear in the passage (1.0 = a pure copy)."""
    q = _shingles(query, n)
    return len(q & _shingles(passage, n)) / len(q) if q else 0.0


@dataclass
class FilterStats:
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def filter_queries(queries: list[SynthQuery], passages: dict[str, str], *, min_chars: int = 8, max_chars: int = 300,
                   near_duplicate: float = 0.8, max_copy_ratio: float = 0.95,
                   round_trip: Callable[[list[SynthQuery]], list[bool]] | None = None) -> tuple[list[SynthQuery], FilterStats]:
    """Drop exact and near duplicates, too short or long queries, copies of their passage, and (optional)
    queries whose source chunk a reference retriever does not find (round trip)."""
    stats = FilterStats()
    kept: list[SynthQuery] = []
    seen_exact: set[str] = set()
    buckets: dict[str, list[set[str]]] = {}
    for q in queries:
        n = len(q.text.strip())
        if n < min_chars or n > max_chars:
            stats.drop("length")
            continue
        key = _norm(q.text)
        if key in seen_exact:
            stats.drop("exact duplicate")
            continue
        sh = _shingles(q.text)
        bucket = buckets.setdefault(key[:2], [])
        if any(jaccard(sh, other) >= near_duplicate for other in bucket):
            stats.drop("near duplicate")
            continue
        src = passages.get(q.positives[0], "")
        if q.generator != "ict" and copy_ratio(q.text, src) > max_copy_ratio and len(q.text) > 40:
            stats.drop("copies its passage")
            continue
        seen_exact.add(key)
        bucket.append(sh)
        kept.append(q)
    if round_trip is not None and kept:
        ok = round_trip(kept)
        survivors = []
        for q, good in zip(kept, ok, strict=True):
            if good:
                survivors.append(q)
            else:
                stats.drop("round trip")
        kept = survivors
    stats.kept = len(kept)
    return kept, stats
