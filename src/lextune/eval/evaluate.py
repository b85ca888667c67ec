"""Evaluate one or several runs against qrels: metrics (overall and per query), paired significance
tests and win/tie/loss counts, with a clear account of input that had to be ignored."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from lextune.errors import ConfigError, InputFormatError
from lextune.eval.metrics import FAMILIES, Family, judged_queries, parse_metric, per_query_metrics
from lextune.extras import optional_import
from lextune.runs import Qrels, Run


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k_values: list[PositiveInt] = Field(default_factory=lambda: [1, 3, 5, 10, 20, 100])
    families: list[Family] = Field(default_factory=lambda: list(FAMILIES))
    primary: str = "ndcg@10"
    stat_test: Literal["student"] = "student"  # paired two-sided Student t-test over per-query scores
    max_p: float = Field(0.05, gt=0, lt=1)
    failure_rank: int = Field(1, description="A query fails when its first gold is ranked below this.")
    failure_top_k: int = 10
    candidate_depth: int = 100

    @field_validator("primary")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        try:
            parse_metric(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc
        return v

    def metric_names(self) -> list[str]:
        names = [f"{f}@{k}" for f in self.families for k in self.k_values]
        if self.primary not in names:
            names.append(self.primary)
        return names


@dataclass
class InputReport:
    """What could not be used, counted so that nothing silently skews the averages."""

    qrels_queries: int = 0
    qrels_unknown_queries: int = 0  # judged queries absent from the query file (dropped)
    qrels_unknown_docs: int = 0  # judgements naming documents absent from the corpus (kept, cannot be found)
    queries_without_judgement: int = 0  # queries no qrels judge (not evaluated)
    run_unknown_queries: dict[str, int] = field(default_factory=dict)  # run queries not judged (ignored)
    run_empty_queries: dict[str, int] = field(default_factory=dict)  # judged queries a run left empty (score 0)
    run_duplicate_docs: dict[str, int] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        out = []
        if self.qrels_unknown_queries:
            out.append(f"{self.qrels_unknown_queries} judged queries are not in the query file (dropped)")
        if self.qrels_unknown_docs:
            out.append(f"{self.qrels_unknown_docs} judgements name documents missing from the corpus (unfindable)")
        if self.queries_without_judgement:
            out.append(f"{self.queries_without_judgement} queries have no judgement (not evaluated)")
        for name, n in self.run_unknown_queries.items():
            if n:
                out.append(f"{name}: {n} run queries are not judged (ignored)")
        for name, n in self.run_empty_queries.items():
            if n:
                out.append(f"{name}: {n} judged queries have no results (scored 0, not dropped)")
        for name, n in self.run_duplicate_docs.items():
            if n:
                out.append(f"{name}: {n} duplicate documents in the run file (first kept)")
        return out


@dataclass
class EvalResult:
    config: EvalConfig
    systems: list[str]
    overall: dict[str, dict[str, float]]  # system -> metric -> mean
    per_query: dict[str, dict[str, dict[str, float]]]  # system -> metric -> qid -> value
    significance: dict[str, dict[str, list[str]]]  # system -> metric -> systems it beats (p < max_p)
    win_tie_loss: dict[str, dict[str, int]]  # system -> counts vs the first system on the primary metric
    inputs: InputReport
    queries: list[str]
    p_values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # system -> other -> metric -> p

    def p_value(self, a: str, b: str, metric: str) -> float:
        """The paired test's p for systems ``a`` and ``b`` on ``metric`` (nan when it is undefined)."""
        return self.p_values[a][b][metric]

    def p_vs_first(self, metric: str) -> dict[str, float | None]:
        """System -> p of the paired test against the first system on ``metric`` (None when undefined)."""
        first = self.systems[0]
        return {s: None if math.isnan(p := self.p_values[s][first][metric]) else p
                for s in self.systems[1:] if first in self.p_values.get(s, {})}

    def to_dict(self) -> dict:
        return {
            "config": self.config.model_dump(), "systems": self.systems, "overall": self.overall,
            "p_vs_first": {m: self.p_vs_first(m) for m in self.config.metric_names()},
            "significance": self.significance, "win_tie_loss": self.win_tie_loss, "inputs": asdict(self.inputs),
            "warnings": self.inputs.warnings(), "queries": len(self.queries),
        }


def _ttest_rel():
    return optional_import("scipy.stats", "index", "significance tests").ttest_rel


def clean_inputs(qrels: Qrels, runs: dict[str, Run], query_ids: set[str] | None = None,
                 corpus_ids: set[str] | None = None,
                 duplicates: dict[str, int] | None = None) -> tuple[Qrels, dict[str, Run], InputReport]:
    """Align qrels and runs on the judged queries and count everything that was left out."""
    report = InputReport(run_duplicate_docs=dict(duplicates or {}))
    judged = judged_queries(qrels)
    if query_ids is not None:
        report.qrels_unknown_queries = sum(1 for q in judged if q not in query_ids)
        judged = {q: d for q, d in judged.items() if q in query_ids}
        report.queries_without_judgement = sum(1 for q in query_ids if q not in judged)
    if corpus_ids is not None:
        report.qrels_unknown_docs = sum(1 for docs in judged.values() for d in docs if d not in corpus_ids)
    if not judged:
        raise InputFormatError("no judged query left to evaluate (check that qrels and queries share ids)")
    report.qrels_queries = len(judged)
    aligned: dict[str, Run] = {}
    for name, run in runs.items():
        report.run_unknown_queries[name] = sum(1 for q in run if q not in judged)
        report.run_empty_queries[name] = sum(1 for q in judged if not run.get(q))
        aligned[name] = {q: dict(run.get(q) or {}) for q in judged}
    return judged, aligned, report


def evaluate(qrels: Qrels, runs: dict[str, Run], config: EvalConfig | None = None,
             query_ids: set[str] | None = None, corpus_ids: set[str] | None = None,
             duplicates: dict[str, int] | None = None) -> EvalResult:
    """Metrics for every system; significance and win/tie/loss against the first system."""
    config = config or EvalConfig()
    if not runs:
        raise InputFormatError("nothing to evaluate: give at least one run or pipeline")
    judged, aligned, report = clean_inputs(qrels, runs, query_ids, corpus_ids, duplicates)
    metrics = config.metric_names()
    qids = list(judged)
    names = list(aligned)
    per_query = {name: per_query_metrics(judged, run, metrics) for name, run in aligned.items()}
    overall = {name: {m: float(sum(per_query[name][m].values()) / len(qids)) for m in metrics} for name in names}
    significance: dict[str, dict[str, list[str]]] = {name: {} for name in names}
    p_values: dict[str, dict[str, dict[str, float]]] = {name: {} for name in names}
    if len(names) > 1:
        ttest_rel = _ttest_rel()
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for m in metrics:
                    xa = [per_query[a][m][q] for q in qids]
                    xb = [per_query[b][m][q] for q in qids]
                    # Paired two-sided Student t over per-query scores (nan when every difference is 0).
                    p = float(ttest_rel(xa, xb, alternative="two-sided").pvalue) if len(qids) > 1 else math.nan
                    p_values[a].setdefault(b, {})[m] = p
                    p_values[b].setdefault(a, {})[m] = p
        for a in names:
            for m in metrics:
                significance[a][m] = [b for b in names if b != a and p_values[a][b][m] < config.max_p
                                      and overall[a][m] > overall[b][m]]
    base = names[0]
    wtl: dict[str, dict[str, int]] = {}
    for name in names:
        w = t = lo = 0
        for q in qids:
            a, b = per_query[name][config.primary][q], per_query[base][config.primary][q]
            if a > b + 1e-12:
                w += 1
            elif b > a + 1e-12:
                lo += 1
            else:
                t += 1
        wtl[name] = {"win": w, "tie": t, "loss": lo}
    return EvalResult(config, names, overall, per_query, significance, wtl, report, qids,
                      p_values)
