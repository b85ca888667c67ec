"""Fusion of runs through ranx: reciprocal rank fusion and normalised weighted sum, weights tunable."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from lextune.errors import MissingExtraError
from lextune.runs import Qrels, Run


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["rrf", "wsum"] = "rrf"
    rrf_k: int = 60
    weights: list[float] | None = None
    norm: Literal["min-max", "max", "sum", "zmuv", "rank", "borda"] = "min-max"


def _ranx():
    try:
        import ranx
    except ImportError as exc:
        raise MissingExtraError('fusion needs ranx: pip install "lextune[index]"') from exc
    return ranx


def _to_ranx(run: Run, name: str):
    ranx = _ranx()
    return ranx.Run({q: d for q, d in run.items() if d}, name=name)


def fuse_runs(runs: list[Run], config: FusionConfig | None = None) -> Run:
    """One run from several; queries that every run left empty stay empty."""
    config = config or FusionConfig()
    qids = list(dict.fromkeys(q for r in runs for q in r))
    live = [r for r in runs if any(r.values())]
    if not live:
        return {q: {} for q in qids}
    if len(live) == 1:
        return {q: dict(live[0].get(q, {})) for q in qids}
    # ranx needs every query in every run: add an empty placeholder score where a run has nothing.
    filled = []
    for i, r in enumerate(runs):
        filled.append({q: (r.get(q) or {f"__none__{i}": 0.0}) for q in qids})
    ranx = _ranx()
    ranx_runs = [ranx.Run(r, name=f"r{i}") for i, r in enumerate(filled)]
    if config.method == "rrf":
        fused = ranx.fuse(runs=ranx_runs, method="rrf", params={"k": config.rrf_k})
    else:
        weights = config.weights or [1.0 / len(runs)] * len(runs)
        fused = ranx.fuse(runs=ranx_runs, norm=config.norm, method="wsum", params={"weights": weights})
    out = fused.to_dict()
    return {q: {d: float(s) for d, s in out.get(q, {}).items() if not d.startswith("__none__")} for q in qids}


def tune_fusion(qrels: Qrels, runs: list[Run], config: FusionConfig | None = None,
                metric: str = "ndcg@10") -> FusionConfig:
    """Weights (wsum) or k (rrf) that maximise ``metric`` on a labelled dev set, via ranx.optimize_fusion."""
    config = config or FusionConfig()
    ranx = _ranx()
    qids = [q for q in qrels if all(r.get(q) for r in runs)]
    ranx_qrels = ranx.Qrels({q: qrels[q] for q in qids})
    ranx_runs = [ranx.Run({q: r[q] for q in qids}, name=f"r{i}") for i, r in enumerate(runs)]
    if config.method == "rrf":
        best = ranx.optimize_fusion(qrels=ranx_qrels, runs=ranx_runs, method="rrf", metric=metric)
        return config.model_copy(update={"rrf_k": int(best["k"])})
    best = ranx.optimize_fusion(qrels=ranx_qrels, runs=ranx_runs, norm=config.norm, method="wsum",
                                metric=metric, step=0.1)
    return config.model_copy(update={"weights": [float(w) for w in best["weights"]]})
