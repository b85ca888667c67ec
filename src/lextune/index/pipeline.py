"""Index folders and composable retrievers.

An index folder holds the documents (``docs.jsonl``), a BM25 part and/or a dense part, and
``meta.json``. Retrievers compose: ``Hybrid([BM25Retriever, DenseRetriever])`` then ``Rerank`` then
``AggregateToArticle``; each has ``search(queries, k) -> run``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, make_meta, read_meta, write_json_atomic
from lextune.errors import ConfigError
from lextune.index.bm25 import BM25Config, BM25Index, run_top
from lextune.index.dense import DenseConfig, DenseIndex
from lextune.index.fusion import FusionConfig, fuse_runs
from lextune.index.rerank import RerankConfig, Reranker
from lextune.runs import Run


class Retriever(Protocol):
    def search(self, queries: dict[str, str], k: int = 10) -> Run: ...


class BM25Retriever:
    def __init__(self, index: BM25Index) -> None:
        self.index = index

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        return self.index.search(queries, k)


class DenseRetriever:
    def __init__(self, index: DenseIndex) -> None:
        self.index = index

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        return self.index.search(queries, k)


class Hybrid:
    """Fuse the top ``depth`` of several retrievers."""

    def __init__(self, retrievers: list[Retriever], fusion: FusionConfig | None = None, depth: int = 100) -> None:
        self.retrievers = retrievers
        self.fusion = fusion or FusionConfig()
        self.depth = depth

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        runs = [r.search(queries, max(k, self.depth)) for r in self.retrievers]
        return run_top(fuse_runs(runs, self.fusion), k)


class Rerank:
    """Re-score the top ``k_rerank`` of a base retriever with a cross-encoder."""

    def __init__(self, base: Retriever, reranker: Reranker, texts: dict[str, str], k_rerank: int = 50) -> None:
        self.base, self.reranker, self.texts, self.k_rerank = base, reranker, texts, k_rerank

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        run = self.base.search(queries, max(k, self.k_rerank))
        return run_top(self.reranker.rerank(queries, run, self.texts, self.k_rerank), k)


class AggregateToArticle:
    """Paragraph hits -> their article (parent id), scored by the best paragraph."""

    def __init__(self, base: Retriever, parent_of: dict[str, str], depth: int = 100) -> None:
        self.base, self.parent_of, self.depth = base, parent_of, depth

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        run = self.base.search(queries, max(k, self.depth))
        out: Run = {}
        for q, docs in run.items():
            agg: dict[str, float] = {}
            for d, s in docs.items():
                parent = self.parent_of.get(d) or d
                agg[parent] = max(agg.get(parent, float("-inf")), s)
            out[q] = agg
        return run_top(out, k)


class PipelineConfig(BaseModel):
    """Which parts of an index to use and how (YAML-loadable)."""

    model_config = ConfigDict(extra="forbid")

    retrievers: list[Literal["bm25", "dense"]] = Field(default_factory=lambda: ["bm25", "dense"])
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    depth: int = 100
    rerank: RerankConfig | None = None
    aggregate: Literal["article"] | None = None
    dense_model: str | None = Field(None, description="Query encoder; defaults to the model that built the index.")
    query_model: str | None = Field(None, description="A query encoder distilled from that model (`lextune train "
                                    "query-encoder`): encodes the queries; the index's passage vectors stay.")


class IndexBuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bm25: BM25Config | None = Field(default_factory=BM25Config)
    dense: DenseConfig | None = None


class LexIndex:
    """An index folder: documents + BM25 and/or dense parts."""

    def __init__(self, folder: Path, docs: dict[str, dict], bm25: BM25Index | None, dense_folder: Path | None,
                 meta: dict) -> None:
        self.folder, self.docs, self.bm25, self.meta = folder, docs, bm25, meta
        self._dense_folder = dense_folder
        self._dense: DenseIndex | None = None

    def dense(self, encoder=None) -> DenseIndex | None:
        if self._dense_folder is None:
            return None
        # Loaded once per encoder (the service calls this on every search).
        if self._dense is None or (encoder is not None and self._dense._encoder is not encoder):
            self._dense = DenseIndex.load(self._dense_folder, encoder)
        return self._dense

    def dense_with(self, encoder, index_type: str = "flat", progress=None) -> DenseIndex:
        """An in-memory dense index of these documents encoded by another ``encoder`` (a tuned model),
        reusing the embedding cache; what base-versus-tuned comparisons search."""
        ids = list(self.docs)
        return DenseIndex(DenseConfig(model=encoder.spec, index_type=index_type), encoder).build(
            ids, [self.docs[i]["contents"] for i in ids], progress=progress)

    @property
    def texts(self) -> dict[str, str]:
        return {d: v["contents"] for d, v in self.docs.items()}

    @classmethod
    def load(cls, folder: str | Path) -> LexIndex:
        folder = Path(folder)
        meta = read_meta(folder)
        if not meta or meta.get("type") != "index":
            raise ConfigError(f"{folder} is not a lextune index (no meta.json of type 'index')")
        from lextune import __version__

        major = lambda v: str(v).split(".")[:2]  # noqa: E731
        if major(meta.get("lextune_version")) != major(__version__):
            raise ConfigError(f"{folder} was built by lextune {meta.get('lextune_version')}; this is {__version__}: "
                              "rebuild it with `lextune index build`")
        docs = {}
        with open(folder / "docs.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                docs[d["id"]] = d
        bm25 = BM25Index.load(folder / "bm25") if (folder / "bm25").is_dir() else None
        dense = folder / "dense" if (folder / "dense").is_dir() else None
        return cls(folder, docs, bm25, dense, meta)

    def pipeline(self, config: PipelineConfig | None = None, encoder=None) -> Retriever:
        """Compose the retrievers this config asks for."""
        config = config or PipelineConfig()
        parts: list[Retriever] = []
        for name in config.retrievers:
            if name == "bm25":
                if self.bm25 is None:
                    raise ConfigError(f"{self.folder} has no BM25 part (build with --bm25)")
                parts.append(BM25Retriever(self.bm25))
            else:
                spec = config.dense_model or (self.meta.get("dense_model") or {}).get("spec")
                if encoder is None and (config.dense_model or config.query_model) and spec:
                    from lextune.models.biencoder import BiEncoder

                    encoder = BiEncoder(spec, query_model=config.query_model)
                dense = self.dense(encoder)
                if dense is None:
                    raise ConfigError(f"{self.folder} has no dense part (build with --dense MODEL)")
                parts.append(DenseRetriever(dense))
        if not parts:
            raise ConfigError("a pipeline needs at least one retriever")
        base: Retriever = parts[0] if len(parts) == 1 else Hybrid(parts, config.fusion, config.depth)
        if config.rerank:
            base = Rerank(base, Reranker(config.rerank), self.texts, config.rerank.k)
        if config.aggregate == "article":
            parent_of = {d: v.get("parent_id") or d for d, v in self.docs.items()}
            base = AggregateToArticle(base, parent_of, config.depth)
        return base


def build_index(docs: list[dict], out_dir: str | Path, config: IndexBuildConfig | None = None,
                source: dict | None = None, encoder=None,
                progress: Callable[[int, int], None] | None = None) -> LexIndex:
    """Index ``docs`` (dicts with id, contents, and optionally title, text, parent_id) into ``out_dir``."""
    config = config or IndexBuildConfig()
    if config.bm25 is None and config.dense is None:
        raise ConfigError("nothing to build: enable BM25 and/or give a dense model")
    ids = [d["id"] for d in docs]
    if len(set(ids)) != len(ids):
        raise ConfigError("duplicate document ids in the index input")
    contents = [d["contents"] for d in docs]
    with atomic_dir(out_dir, overwrite=True) as tmp:
        with open(tmp / "docs.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({k: d.get(k) for k in ("id", "title", "text", "contents", "parent_id")},
                                   ensure_ascii=False) + "\n")
        if config.bm25 is not None:
            BM25Index(config.bm25).build(ids, contents).save(tmp / "bm25")
        model_info = None
        if config.dense is not None:
            dense = DenseIndex(config.dense, encoder).build(ids, contents, progress=progress)
            dense.save(tmp / "dense")
            model_info = dense.model_info
        write_json_atomic(tmp / "meta.json", make_meta(
            "index", config=config.model_dump(mode="json"), inputs=source or {}, documents=len(docs),
            dense_model=model_info))
    return LexIndex.load(out_dir)


def docs_from_chunks(chunks) -> list[dict]:
    """Index input from ingest chunks."""
    return [{"id": c.id, "title": c.title, "text": c.text, "contents": c.contents, "parent_id": c.parent_id}
            for c in chunks]


def docs_from_beir(corpus: dict[str, dict]) -> list[dict]:
    """Index input from a BEIR corpus (``load_beir(...).corpus``): the title, a newline and the text."""
    return [{"id": i, "title": d["title"], "text": d["text"],
             "contents": f"{d['title']}\n{d['text']}" if d["title"] else d["text"]} for i, d in corpus.items()]


def explain_search(index: LexIndex, queries: dict[str, str], k: int = 10, *, encoder=None,
                   fusion: FusionConfig | None = None, depth: int = 100, reranker: Reranker | None = None,
                   k_rerank: int = 50) -> dict[str, list[dict]]:
    """Hybrid search over every part of ``index`` (+ optional rerank), with each part's score per hit.

    Returns query id -> ranked hits ``{id, rank, score, title, text, parent_id, scores}`` where
    ``scores`` holds the BM25, dense, fused and rerank scores that the hit got (absent: not retrieved
    by that part). What the service's /v1/search answers.
    """
    parts: dict[str, Retriever] = {}
    if index.bm25 is not None:
        parts["bm25"] = BM25Retriever(index.bm25)
    dense = index.dense(encoder) if index._dense_folder is not None else None
    if dense is not None:
        parts["dense"] = DenseRetriever(dense)
    if not parts:
        raise ConfigError(f"{index.folder} has neither a BM25 nor a dense part")
    pool = max(k, depth, k_rerank if reranker else 0)
    runs = {name: r.search(queries, pool) for name, r in parts.items()}
    fused = fuse_runs(list(runs.values()), fusion) if len(runs) > 1 else next(iter(runs.values()))
    final = run_top(fused, max(k, k_rerank) if reranker else k)
    reranked: Run = {}
    if reranker is not None:
        reranked = reranker.rerank(queries, final, index.texts, k_rerank)
        final = reranked
    out: dict[str, list[dict]] = {}
    for q in queries:
        ranked = sorted(final.get(q, {}).items(), key=lambda kv: -kv[1])[:k]
        hits = []
        for rank, (d, s) in enumerate(ranked, 1):
            doc = index.docs[d]
            scores = {name: run[q][d] for name, run in runs.items() if d in run.get(q, {})}
            if len(runs) > 1:
                scores["fused"] = fused[q][d]
            if reranker is not None and d in reranked.get(q, {}):
                scores["rerank"] = reranked[q][d]
            hits.append({"id": d, "rank": rank, "score": float(s), "title": doc.get("title"), "text": doc.get("text"),
                         "parent_id": doc.get("parent_id"), "scores": {n: float(v) for n, v in scores.items()}})
        out[q] = hits
    return out
