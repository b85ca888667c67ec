"""Korean BM25 over chunks, on bm25s, saved and loaded with its tokenizer settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lextune.errors import ConfigError
from lextune.extras import optional_import
from lextune.index.tokenize import TokenizerConfig, make_tokenizer
from lextune.runs import Run


class BM25Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    k1: float = Field(1.2, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    method: str = "lucene"
    batch_size: int = 512


def _bm25s():
    bm25s = optional_import("bm25s", "index", "BM25")
    logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets DEBUG on import
    return bm25s


class BM25Index:
    """A bm25s index over chunk ids; ``search`` returns a run (query id -> chunk id -> score)."""

    def __init__(self, config: BM25Config | None = None) -> None:
        self.config = config or BM25Config()
        self.tokenizer = make_tokenizer(self.config.tokenizer)
        self.ids: list[str] = []
        self._bm25 = None
        self._pos: dict[str, int] | None = None
        self._masks: dict[frozenset[str], np.ndarray] = {}

    def build(self, ids: list[str], texts: list[str], progress: bool = False) -> BM25Index:
        """Tokenize (in batches) and index ``texts`` under ``ids``."""
        if len(ids) != len(texts):
            raise ConfigError("ids and texts differ in length")
        tokens: list[list[str]] = []
        for i in range(0, len(texts), self.config.batch_size):
            tokens.extend(self.tokenizer(texts[i : i + self.config.batch_size]))
        bm25s = _bm25s()
        self._bm25 = bm25s.BM25(k1=self.config.k1, b=self.config.b, method=self.config.method)
        self._bm25.index(tokens, show_progress=progress)
        self.ids = list(ids)
        self._pos, self._masks = None, {}
        return self

    def search(self, queries: dict[str, str], k: int = 100, only: frozenset[str] | None = None) -> Run:
        """Top-k chunks per query (among the ids ``only`` when given); queries with no usable token get an
        empty ranking."""
        if self._bm25 is None:
            raise ConfigError("the BM25 index is empty: build or load it first")
        qids = list(queries)
        tokens = self.tokenizer([queries[q] for q in qids])
        vocab = self._bm25.vocab_dict
        run: Run = {q: {} for q in qids}
        todo = [(q, [t for t in toks if t in vocab]) for q, toks in zip(qids, tokens, strict=True)]
        todo = [(q, toks) for q, toks in todo if toks]
        if not todo:
            return run
        mask = None
        if only is not None:
            mask = self._mask(only)
            k = min(k, int(mask.sum()))
            if k == 0:
                return run
        k = min(k, len(self.ids))
        docs, scores = self._bm25.retrieve([t for _, t in todo], k=k, show_progress=False, weight_mask=mask)
        for (qid, _), row_docs, row_scores in zip(todo, docs, scores, strict=True):
            run[qid] = {self.ids[int(d)]: float(s) for d, s in zip(row_docs, row_scores, strict=True) if s > 0}
        return run

    def _mask(self, only: frozenset[str]) -> np.ndarray:
        """1 for the ids in ``only``, 0 elsewhere: made once per filter, not on every search."""
        if only not in self._masks:
            self._masks[only] = np.fromiter((d in only for d in self.ids), dtype=np.float32, count=len(self.ids))
        return self._masks[only]

    def score_ids(self, query: str, ids: list[str]) -> list[float]:
        """BM25 scores of the chunks ``ids`` for one query (0 for a query with no usable token)."""
        if self._bm25 is None:
            raise ConfigError("the BM25 index is empty: build or load it first")
        if not ids:
            return []
        vocab = self._bm25.vocab_dict
        toks = [t for t in self.tokenizer([query])[0] if t in vocab]
        if not toks:
            return [0.0] * len(ids)
        if self._pos is None:
            self._pos = {d: i for i, d in enumerate(self.ids)}
        scores = self._bm25.get_scores(toks)
        return [float(scores[self._pos[d]]) for d in ids]

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._bm25.save(str(folder / "bm25s"))
        (folder / "ids.json").write_text(json.dumps(self.ids, ensure_ascii=False), encoding="utf-8")
        (folder / "config.json").write_text(self.config.model_dump_json(indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: str | Path) -> BM25Index:
        folder = Path(folder)
        cfg = BM25Config.model_validate_json((folder / "config.json").read_text(encoding="utf-8"))
        index = cls(cfg)
        index._bm25 = _bm25s().BM25.load(str(folder / "bm25s"))
        index.ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        return index

    def __len__(self) -> int:
        return len(self.ids)


def run_top(run: Run, k: int) -> Run:
    """Cut every ranking of a run to its top k."""
    out: Run = {}
    for q, docs in run.items():
        top = sorted(docs.items(), key=lambda kv: -kv[1])[:k]
        out[q] = dict(top)
    return out
