"""Retrieval metrics through ranx, with explicit handling of queries a run does not answer."""

from __future__ import annotations

from lextune.errors import MissingExtraError
from lextune.runs import Qrels, Run, canonical_ranking

DEFAULT_METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


def evaluate_run(qrels: Qrels, run: Run, metrics: list[str] | None = None,
                 per_query: bool = False) -> dict[str, float] | dict[str, dict[str, float]]:
    """Mean metrics over every judged query; a query the run leaves empty scores 0 (never dropped)."""
    try:
        import ranx
    except ImportError as exc:
        raise MissingExtraError('metrics need ranx: pip install "lextune[index]"') from exc
    metrics = metrics or DEFAULT_METRICS
    judged = {q: docs for q, docs in qrels.items() if docs}
    filled = {q: canonical_ranking(run.get(q) or {"__no_result__": 0.0}) for q in judged}
    ranx_run = ranx.Run(filled)
    result = ranx.evaluate(ranx.Qrels(judged), ranx_run, metrics, return_mean=not per_query, make_comparable=True)
    if per_query:
        return {m: {q: float(ranx_run.scores[m][q]) for q in judged} for m in metrics}
    if len(metrics) == 1:
        return {metrics[0]: float(result)}
    return {m: float(v) for m, v in result.items()}
