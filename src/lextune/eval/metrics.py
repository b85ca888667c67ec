"""Retrieval metrics computed exactly, in plain Python, with trec_eval's definitions.

Why not ranx's kernels: ranx matches documents by 64-bit hashes of numba strings built from fixed-width
numpy arrays (widened to the longest id of the whole run), so its numbers rest on numba's string
handling of the day; a fresh install on 2026-12-02 (ranx 0.3.21, numba 0.68.1, numpy 2.4.6) scored a
query that has a result 0 because another query had none. Here every metric is a few lines over sorted
lists, the same on every install; ``tests/test_metrics.py`` checks it against pytrec_eval (trec_eval's
C code), ranx and hand-computed values.

Definitions (relevant = judged ``>= 1``; the ranking is by descending score, ties by document id):

- ``hit_rate@k``: 1 if a relevant document is in the top k.
- ``mrr@k``: 1 / rank of the first relevant document in the top k, else 0.
- ``precision@k``: relevant documents in the top k / k (k, even when fewer were returned).
- ``recall@k``: relevant documents in the top k / all relevant documents.
- ``map@k``: sum of precision@i over the relevant ranks i <= k / all relevant documents.
- ``ndcg@k``: sum of rel_i / log2(i + 1) over the top k, divided by the same sum over the ideal
  ranking (graded gains, Järvelin & Kekäläinen; trec_eval's ``ndcg_cut``).

Without ``@k`` a metric reads the whole ranking. A judged query without results scores 0 (never
dropped); queries whose judgements are all 0 have nothing to find and are not evaluated; queries the
run answers but the qrels do not judge are ignored.
"""

from __future__ import annotations

import math
import re
from typing import Literal, get_args

from lextune.errors import ConfigError
from lextune.runs import Qrels, Run, canonical_ranking

Family = Literal["hit_rate", "mrr", "map", "ndcg", "recall", "precision"]
FAMILIES: tuple[str, ...] = get_args(Family)
DEFAULT_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]
_NAME = re.compile(r"^(?P<family>[a-z_]+)(?:@(?P<k>\d+))?$")


def parse_metric(name: str) -> tuple[str, int | None]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``, ``"mrr"`` -> ``("mrr", None)`` (the whole ranking)."""
    m = _NAME.match(name)
    if not m or m.group("family") not in FAMILIES or (m.group("k") is not None and int(m.group("k")) < 1):
        raise ConfigError(f"unknown metric {name!r}: use one of {', '.join(FAMILIES)}, optionally @k with k >= 1")
    return m.group("family"), int(m.group("k")) if m.group("k") is not None else None


def query_metric(family: str, k: int | None, ranked: list[str], judged: dict[str, int]) -> float:
    """One metric of one query: ``ranked`` is the ranking (best first), ``judged`` its judgements."""
    gains = [judged.get(d, 0) for d in (ranked if k is None else ranked[:k])]
    n_rel = sum(1 for r in judged.values() if r >= 1)
    if n_rel == 0:
        return 0.0
    hits = [g >= 1 for g in gains]
    if family == "hit_rate":
        return 1.0 if any(hits) else 0.0
    if family == "mrr":
        return next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    if family == "precision":
        depth = k if k is not None else len(ranked)
        return sum(hits) / depth if depth else 0.0
    if family == "recall":
        return sum(hits) / n_rel
    if family == "map":
        found, total = 0, 0.0
        for i, h in enumerate(hits):
            if h:
                found += 1
                total += found / (i + 1)
        return total / n_rel
    if family == "ndcg":
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains) if g >= 1)
        ideal = sorted((r for r in judged.values() if r >= 1), reverse=True)
        ideal = ideal if k is None else ideal[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        return dcg / idcg
    raise ConfigError(f"unknown metric family {family!r}")


def judged_queries(qrels: Qrels) -> Qrels:
    """The queries that have something to find (at least one judgement >= 1), in qrels order."""
    return {q: dict(docs) for q, docs in qrels.items() if any(r >= 1 for r in docs.values())}


def per_query_metrics(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, dict[str, float]]:
    """``metric -> query id -> value`` over every judged query of ``qrels`` (see the module's rules)."""
    parsed = [(m, *parse_metric(m)) for m in metrics]
    out: dict[str, dict[str, float]] = {m: {} for m in metrics}
    for q, judged in judged_queries(qrels).items():
        ranked = list(canonical_ranking(run.get(q) or {}))
        for name, family, k in parsed:
            out[name][q] = query_metric(family, k, ranked, judged)
    return out


def evaluate_run(qrels: Qrels, run: Run, metrics: list[str] | None = None,
                 per_query: bool = False) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean metrics over every judged query; a query the run leaves empty scores 0 (never dropped).
    The same numbers as :func:`lextune.eval.evaluate.evaluate` for one system."""
    metrics = metrics or DEFAULT_METRICS
    scores = per_query_metrics(qrels, run, metrics)
    if per_query:
        return scores
    return {m: (sum(v.values()) / len(v) if v else 0.0) for m, v in scores.items()}
