"""Fusion of runs: reciprocal rank fusion and (through ranx) normalised weighted sum.

RRF is computed here in plain Python: it is a sum of 1/(k + rank), and ranx's numba kernels compile
again for new inputs (~0.2 s each time) which made served search latency spiky. A test keeps it equal
to ``ranx.fuse(method="rrf")``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.extras import optional_import
from lextune.runs import Run


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["rrf", "wsum"] = "rrf"
    rrf_k: int = Field(60, ge=1)
    weights: list[float] | None = None
    norm: Literal["min-max", "max", "sum", "zmuv", "rank", "borda"] = "min-max"


def _ranx():
    return optional_import("ranx", "index", "fusion")


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
    if config.method == "rrf":
        return {q: rrf(live, q, config.rrf_k) for q in qids}
    # ranx needs every query in every run: add an empty placeholder score where a run has nothing.
    filled = []
    for i, r in enumerate(runs):
        filled.append({q: (r.get(q) or {f"__none__{i}": 0.0}) for q in qids})
    ranx = _ranx()
    ranx_runs = [ranx.Run(r, name=f"r{i}") for i, r in enumerate(filled)]
    weights = config.weights or [1.0 / len(runs)] * len(runs)
    fused = ranx.fuse(runs=ranx_runs, norm=config.norm, method="wsum", params={"weights": weights})
    out = fused.to_dict()
    return {q: {d: float(s) for d, s in out.get(q, {}).items() if not d.startswith("__none__")} for q in qids}


def rrf(runs: list[Run], qid: str, k: int = 60) -> dict[str, float]:
    """Reciprocal rank fusion of one query: sum over runs of 1 / (k + rank), rank 1 the best score
    (ties broken by document id, as a sort by score then id would)."""
    fused: dict[str, float] = {}
    for run in runs:
        ranked = sorted((run.get(qid) or {}).items(), key=lambda kv: (-kv[1], kv[0]))
        for rank, (doc, _) in enumerate(ranked, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return dict(sorted(fused.items(), key=lambda kv: -kv[1]))
