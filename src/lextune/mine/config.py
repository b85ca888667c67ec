"""Mining's config (validated at start) and its summary (counts by reason, score distributions, timings)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lextune.index.rerank import RerankConfig


class MineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bm25_depth: int = Field(50, ge=0)
    dense_depth: int = Field(50, ge=0)
    scorer: Literal["dense", "bm25", "reranker"] = Field(
        "dense", description="What scores candidates for the false-negative filter and the order of negatives: the "
        "dense model's cosine, BM25 (no dense index needed: BM25 candidates, deeper fill from BM25), or a "
        "cross-encoder.")
    reranker: RerankConfig | None = None
    n_negatives: int = Field(7, ge=1)
    selection: Literal["top", "range"] = "top"
    skip_top: int = Field(0, ge=0, description="With 'top': ignore this many best candidates first.")
    range_start: int = Field(10, ge=0)
    range_end: int = Field(50, ge=1)
    random_ratio: float = Field(0.0, ge=0.0, le=1.0, description="Share of negatives drawn from the whole corpus.")
    exclude_siblings: bool = True
    exclude_cited: bool = True
    max_score_ratio: float | None = Field(0.95, description="Drop candidates above this share of the best positive's "
                                          "score (on score_scale; 1.0: only those that outscore it).")
    min_margin: float | None = Field(None, description="Drop candidates within this margin of the best positive "
                                     "(on score_scale).")
    score_scale: Literal["pool", "raw"] = Field(
        "pool", description="pool: a query's scores are rescaled to 0..1 between its weakest pooled candidate and its "
        "best positive before the ratio and margin tests, so 0.95 means 'within the top 5% of that gap' for any "
        "model (e5 cosines of positives and negatives differ by ~0.01); raw: the scorer's own scores.")
    fill: Literal["deeper", "random", "none"] = Field(
        "deeper", description="When the filters leave fewer hard negatives than asked: take them from deeper dense "
        "ranks (up to fill_depth, same filters), then at random from the corpus ('random': at random only; 'none': "
        "fewer negatives, and a query with none is skipped and counted).")
    fill_depth: int = Field(200, ge=1, description="Dense ranks searched when filling.")
    max_queries: int | None = Field(None, ge=1, description="Mine a sample of this many queries, taking the query "
                                    "generators in turn (stratified), in a stable order.")
    batch_size: int = Field(256, ge=1)
    seed: int = 13

    @model_validator(mode="after")
    def _range_order(self) -> MineConfig:
        if self.range_start >= self.range_end:
            raise ValueError(f"range_start ({self.range_start}) must be below range_end ({self.range_end})")
        return self


@dataclass
class MineSummary:
    queries: int = 0
    records: int = 0
    resumed: int = 0
    skipped_no_negative: int = 0
    sampled_out: int = 0
    candidates: int = 0
    # generator -> number of hard negatives -> queries; and how many queries needed deeper or random fill
    hard_negatives: dict[str, Counter] = field(default_factory=dict)
    filled: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    pos_scores: list[float] = field(default_factory=list)
    neg_scores: list[float] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"bm25": 0.0, "dense": 0.0, "rerank": 0.0, "total": 0.0})

    def to_dict(self) -> dict:
        def dist(xs: list[float]) -> dict:
            if not xs:
                return {}
            a = np.asarray(xs)
            return {"n": len(a), "mean": float(a.mean()), "p10": float(np.percentile(a, 10)),
                    "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90))}
        return {"queries": self.queries, "records": self.records, "resumed": self.resumed,
                "skipped_no_negative": self.skipped_no_negative, "sampled_out": self.sampled_out,
                "candidates": self.candidates,
                "hard_negatives_per_generator": {g: {str(k): v for k, v in sorted(c.items())}
                                                 for g, c in sorted(self.hard_negatives.items())},
                "filled": dict(self.filled),
                "dropped": dict(self.dropped), "pos_score": dist(self.pos_scores), "neg_score": dist(self.neg_scores),
                "seconds": self.seconds}
