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


def query_timings(encoder, texts: list[str]) -> dict[str, float]:
    """Query-encoding time of ``encoder`` on this CPU: one text per call (p50, p99) and batches of 8."""
    import time

    import numpy as np

    encoder.encode_queries(texts[:8])  # warm-up
    single = []
    for t in texts:
        t0 = time.perf_counter()
        encoder.encode_queries([t])
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for s in range(0, len(texts), 8):
        encoder.encode_queries(texts[s : s + 8])
    return {"single_ms_p50": float(np.percentile(single, 50) * 1000),
            "single_ms_p99": float(np.percentile(single, 99) * 1000),
            "batch8_ms_per_query": (time.perf_counter() - t0) * 1000 / len(texts)}
