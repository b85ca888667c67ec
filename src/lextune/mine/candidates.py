"""Candidate gathering and scoring: the union of BM25 and dense top-N per query, deeper ranks when the filters
leave too few, and one scorer (dense cosine, BM25 or a cross-encoder) that puts them on one scale."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from lextune.errors import ConfigError
from lextune.mine.config import MineConfig


class Candidates:
    """An index's candidates and scores for training queries, timed into ``seconds`` (bm25, dense, rerank)."""

    def __init__(self, index, config: MineConfig, qmeta: dict[str, dict], seconds: dict[str, float]) -> None:
        from lextune.index.rerank import Reranker

        self.index, self.config, self.qmeta, self.seconds = index, config, qmeta, seconds
        self.dense = index.dense()
        if config.scorer == "dense" and self.dense is None:
            raise ConfigError("scorer 'dense' needs an index with a dense part (or use scorer: bm25 or reranker)")
        if config.scorer == "bm25" and index.bm25 is None:
            raise ConfigError("scorer 'bm25' needs an index with a BM25 part")
        self.reranker = Reranker(config.reranker) if config.scorer == "reranker" and config.reranker else None
        if config.scorer == "reranker" and self.reranker is None:
            raise ConfigError("scorer 'reranker' needs a reranker section (model)")
        self.dense_pos = {d: i for i, d in enumerate(self.dense.ids)} if self.dense is not None else {}
        self.qvec_of: dict[str, np.ndarray] = {}  # the current batch's query vectors
        self.timer = "rerank" if self.reranker is not None else config.scorer  # where scoring time is counted

    @contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.seconds[key] += time.perf_counter() - t

    def gather(self, batch: dict[str, str]) -> dict[str, set[str]]:
        """BM25 top ``bm25_depth`` united with dense top ``dense_depth`` for each query of a batch."""
        cands: dict[str, set[str]] = {q: set() for q in batch}
        with self._timed("bm25"):
            if self.index.bm25 is not None and self.config.bm25_depth:
                for q, docs in self.index.bm25.search(batch, self.config.bm25_depth).items():
                    cands[q].update(docs)
        if self.dense is not None:
            with self._timed("dense"):
                qids = list(batch)
                qvecs = self.dense.encoder.encode_queries([batch[q] for q in qids])
                if self.config.dense_depth:
                    for q, docs in self.dense.search_vectors(qids, qvecs, self.config.dense_depth).items():
                        cands[q].update(docs)
                self.qvec_of = dict(zip(qids, qvecs, strict=True))
        return cands

    def can_go_deeper(self) -> bool:
        return self.dense is not None or self.index.bm25 is not None

    def deeper(self, qid: str, text: str) -> list[str]:
        """The query's top ``fill_depth`` dense ranks (BM25 without a dense part)."""
        with self._timed("dense" if self.dense is not None else "bm25"):
            if self.dense is not None:
                return list(self.dense.search_vectors([qid], self.qvec_of[qid][None, :], self.config.fill_depth)[qid])
            return list(self.index.bm25.search({qid: text}, self.config.fill_depth)[qid])

    def score(self, qid: str, text: str, ids: list[str], n_pos: int) -> list[float]:
        """The scorer's scores of ``ids`` for one query (the first ``n_pos`` are its positives)."""
        if not ids:
            return []
        with self._timed(self.timer):
            if self.reranker is not None:
                own = self.qmeta[qid].get("positive_text")
                texts = [own if i < n_pos and own else self.index.docs[d]["contents"] for i, d in enumerate(ids)]
                return list(self.reranker.score([(text, x) for x in texts]))
            if self.config.scorer == "bm25":
                return self.index.bm25.score_ids(text, ids)
            vecs = self.dense.vectors([self.dense_pos[d] for d in ids])
            if vecs is None:
                raise ConfigError("scorer 'dense' needs the index's stored vectors; this IVF index cannot give them "
                                  "back: rebuild it as flat or hnsw, or use scorer: bm25 or reranker")
            return (vecs @ self.qvec_of[qid]).tolist()
