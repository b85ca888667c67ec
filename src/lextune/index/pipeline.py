"""Retrieval pipelines: one YAML, one builder, one ranking for `lextune eval`, the run's comparison,
`lextune search` and `/v1/search`.

A :class:`PipelineConfig` names its first-stage retrievers (registry entries: ``bm25``, ``dense``, or any
added with :func:`register_retriever`), how their runs are fused (``rrf`` or ``wsum``), and the steps that
follow: ``rerank`` (a cross-encoder over the top ``k``, blended with the first stage at ``weight``) and
``aggregate``. :func:`build_pipeline` turns it into a :class:`Pipeline` over a
:class:`~lextune.index.lexindex.LexIndex`; ``Pipeline.search`` gives the run that evaluation scores and
``Pipeline.explain`` the same ranking with every part's score per hit (what the service answers).

Adding a retriever is one :func:`register_retriever` entry; adding a step is one :class:`Step` subclass
and one factory in ``STEPS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from lextune.errors import ConfigError
from lextune.index.bm25 import run_top
from lextune.index.fusion import FusionConfig, fuse_runs
from lextune.index.lexindex import LexIndex
from lextune.index.rerank import RerankConfig, Reranker
from lextune.index.structure import (
    ExpandConfig,
    LawMatcher,
    PoolConfig,
    RouteConfig,
    Structure,
    expand,
    pool,
    route,
)
from lextune.index.vectorstore import DocFilter
from lextune.runs import Run, canonical_ranking


class Trace(dict):
    """What each part scored, by part name (bm25, dense, fused, route, expand, pool, rerank ...), and
    ``notes``: query id -> document id -> why a step added it (``cited by 상법 제665조(…)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes: dict[str, dict[str, str]] = {}


class Retriever(Protocol):
    def search(self, queries: dict[str, str], k: int = 10) -> Run: ...


# -- the retriever registry --------------------------------------------------------------------------
class RetrieverOptions(BaseModel):
    """Options of a retriever that takes none."""

    model_config = ConfigDict(extra="forbid")


class DenseOptions(RetrieverOptions):
    index_type: Literal["flat", "hnsw", "ivf", "auto"] = Field(
        "flat", description="FAISS index of the passages when the pipeline's dense_model is not the model that "
        "built the index, so that the documents are encoded for it (through the embedding cache).")


@dataclass(frozen=True)
class RetrieverEntry:
    options: type[RetrieverOptions]
    build: Callable[..., Retriever]  # (index, options, config, resources) -> Retriever


RETRIEVERS: dict[str, RetrieverEntry] = {}


def register_retriever(name: str, options: type[RetrieverOptions] = RetrieverOptions):
    """Decorator: ``factory(index, options, config, resources) -> Retriever`` becomes the retriever ``name``,
    usable in every pipeline YAML as ``- name`` or ``- {name: NAME, option: value}``."""

    def deco(factory):
        RETRIEVERS[name] = RetrieverEntry(options, factory)
        return factory

    return deco


class Searcher:
    """A retriever over anything with ``search(queries, k, **restrict)`` (a BM25 or dense index); ``restrict``
    carries the pipeline's filter in the form that index takes."""

    def __init__(self, index, **restrict: Any) -> None:
        self.index, self.restrict = index, {k: v for k, v in restrict.items() if v is not None}

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        return self.index.search(queries, k, **self.restrict)


@register_retriever("bm25")
def _bm25(index: LexIndex, _options: RetrieverOptions, config: PipelineConfig,
          _resources: PipelineResources) -> Retriever:
    """Kiwi BM25 over the index's BM25 part."""
    if index.bm25 is None:
        raise ConfigError(f"{index.folder} has no BM25 part (build with --bm25)")
    return Searcher(index.bm25, only=index.matching(config.filter) if config.filter else None)


@register_retriever("dense", DenseOptions)
def _dense(index: LexIndex, options: DenseOptions, config: PipelineConfig, resources: PipelineResources) -> Retriever:
    """Bi-encoder nearest neighbours: the index's stored vectors, or, when ``dense_model`` names another model,
    the index's documents encoded by it on first use (cached by model fingerprint)."""
    if config.dense_model is None and config.query_model is None and resources.default_encoder is not None:
        encoder = resources.default_encoder  # handed in (the service's, a test's): queries the stored vectors
    else:
        spec = config.dense_model or index.dense_spec
        if spec is None:
            raise ConfigError(f"{index.folder} has no dense part: build it with --dense MODEL, or name the "
                              "pipeline's dense_model to encode its documents")
        encoder = resources.encoder(spec, config.query_model)
    stored = (index.meta.get("dense_model") or {}).get("fingerprint")
    if index.has_dense and (config.dense_model is None or encoder.fingerprint() == stored):
        return Searcher(index.dense(encoder), where=config.filter)  # refuses vectors another model made
    if config.dense_model is None:
        raise ConfigError(f"{index.folder} has no dense part: build it with --dense MODEL, or name the "
                          "pipeline's dense_model to encode its documents")
    return Searcher(resources.encoded(index, encoder, options.index_type), where=config.filter)


class RetrieverSpec(BaseModel):
    """One first-stage retriever: a registry name and its options (YAML ``bm25`` or ``{name: dense, ...}``)."""

    model_config = ConfigDict(extra="allow")

    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _known(self) -> RetrieverSpec:
        if self.name not in RETRIEVERS:
            raise ValueError(f"unknown retriever {self.name!r}; known: {', '.join(sorted(RETRIEVERS))}")
        self.options  # noqa: B018 - validates the options now, at load time
        return self

    @property
    def options(self) -> RetrieverOptions:
        return RETRIEVERS[self.name].options.model_validate(self.model_extra or {})


# -- the config -------------------------------------------------------------------------------------
class PipelineRerank(RerankConfig):
    """The cross-encoder step: re-scores the first stage's top ``k``."""

    weight: float = Field(
        1.0, ge=0, le=1, description="Blend of the reranker's and the first stage's ranks over the top k: "
        "weight / rank_rerank + (1 - weight) / rank_first. 1: the reranker's order (its scores); 0: the first "
        "stage's order, and the reranker is not run.")


class PipelineConfig(BaseModel):
    """Which parts of an index to use and how (YAML-loadable)."""

    model_config = ConfigDict(extra="forbid")

    retrievers: list[RetrieverSpec] = Field(
        default_factory=lambda: [RetrieverSpec(name="bm25"), RetrieverSpec(name="dense")], min_length=1)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    depth: int = Field(100, ge=1, description="Hits taken from each retriever before fusion.")
    route: RouteConfig | None = None
    expand: ExpandConfig | None = None
    pool: PoolConfig | None = None
    rerank: PipelineRerank | None = None
    aggregate: Literal["article"] | None = Field(
        None, description="article: paragraph hits -> their article, scored by the best paragraph.")
    dense_model: str | None = Field(
        None, description="The dense retriever's model (default: the model that built the index). Another model "
        "encodes the index's documents on first use, cached by its fingerprint.")
    query_model: str | None = Field(
        None, description="A query encoder distilled from the dense model (`lextune train query-encoder`): "
        "encodes the queries; the passage vectors stay.")
    filter: DocFilter | None = Field(
        None, description="Only chunks with these fields (law, kind, article, document: a value or a list): "
        "BM25 and the dense store search only those (Milvus: server-side), and steps that add hits keep to them.")

    @field_validator("retrievers", mode="before")
    @classmethod
    def _one_of_each(cls, v: Any) -> Any:
        names = [x if isinstance(x, str) else x.get("name") if isinstance(x, dict) else getattr(x, "name", None)
                 for x in (v or [])]
        if len(set(names)) != len(names):
            raise ValueError(f"each retriever once: {names}")
        return v

    @field_serializer("retrievers")
    def _short(self, retrievers: list[RetrieverSpec]) -> list:
        return [r.name if not r.model_extra else r.model_dump() for r in retrievers]

    @model_validator(mode="after")
    def _weights(self) -> PipelineConfig:
        w = self.fusion.weights
        if w is not None and len(w) != len(self.retrievers):
            raise ValueError(f"fusion.weights has {len(w)} values for {len(self.retrievers)} retrievers")
        return self

    @classmethod
    def preset(cls, mode: str, **values: Any) -> PipelineConfig:
        """``bm25``, ``dense`` or ``hybrid`` (both, fused): the pipelines that CLI flags name."""
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        return cls.model_validate({"retrievers": MODES[mode], **values})


MODES: dict[str, list[str]] = {"bm25": ["bm25"], "dense": ["dense"], "hybrid": ["bm25", "dense"]}


# -- models and runs that pipelines share -------------------------------------------------------------
class PipelineResources:
    """What several pipelines share: one encoder per (spec, query model), one reranker per settings, one
    encoded corpus per (index, model), and the last run of each first-stage retriever (a comparison of
    pipelines searches BM25 or a dense model once for all of them). Hand in models already loaded."""

    def __init__(self, *, encoder=None, encoders: list | None = None, reranker: Reranker | None = None,
                 say: Callable[[str], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.default_encoder = encoder
        self._encoders: dict[tuple[str, str | None], Any] = {(e.spec, None): e for e in encoders or []}
        self._rerankers: dict[tuple, Reranker] = {}
        if reranker is not None:
            self._rerankers[_reranker_key(reranker.config)] = reranker
        self._encoded: dict[tuple, Any] = {}
        self._retrievers: dict[tuple, _Remembered] = {}
        self.say = say or (lambda _m: None)
        self.progress = progress

    def encoder(self, spec: str, query_model: str | None = None):
        key = (spec, query_model)
        if key not in self._encoders:
            from lextune.models.biencoder import BiEncoder

            self._encoders[key] = BiEncoder(spec, query_model=query_model)
        return self._encoders[key]

    def reranker(self, config: RerankConfig) -> Reranker:
        key = _reranker_key(config)
        if key not in self._rerankers:
            self._rerankers[key] = Reranker(RerankConfig.model_validate(
                config.model_dump(include=set(RerankConfig.model_fields))))
        return self._rerankers[key]

    def encoded(self, index: LexIndex, encoder, index_type: str = "flat"):
        """The index's documents encoded by ``encoder`` (in memory; vectors from the embedding cache)."""
        key = (str(index.folder), encoder.fingerprint(), index_type)
        if key not in self._encoded:
            self.say(f"encoding {len(index.docs)} passages of {index.folder.name} with {encoder.spec} (cached)")
            self._encoded[key] = index.dense_with(encoder, index_type, progress=self.progress)
        return self._encoded[key]

    def remembered(self, key: tuple, make: Callable[[], Retriever]) -> Retriever:
        if key not in self._retrievers:
            self._retrievers[key] = _Remembered(make())
        return self._retrievers[key]


def _reranker_key(config: RerankConfig) -> tuple:
    return config.model, config.max_length, config.batch_size


class _Remembered:
    """A retriever that keeps its last run: the same queries at the same or a smaller k are not searched again."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self._last: tuple[str, int, Run] | None = None

    def search(self, queries: dict[str, str], k: int = 10) -> Run:
        key = hashlib.sha1(repr(sorted(queries.items())).encode()).hexdigest()
        if self._last is None or self._last[0] != key or self._last[1] < k:
            self._last = (key, k, self.inner.search(queries, k))
        run = self._last[2]
        return run if self._last[1] == k else run_top(run, k)


# -- steps after the first stage ---------------------------------------------------------------------
class Step:
    """A pipeline step: takes the run so far and returns a new one, recording its own scores in the trace."""

    name = "step"

    def want(self, k: int) -> int:
        """How many hits it needs from the steps before it to return ``k``."""
        return k

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        raise NotImplementedError


class RerankStep(Step):
    """Re-score the top ``k`` with a cross-encoder, blended with the first stage's ranks at ``weight``."""

    name = "rerank"

    def __init__(self, reranker: Reranker | None, texts: dict[str, str], k_rerank: int, weight: float) -> None:
        self.reranker, self.texts, self.k_rerank, self.weight = reranker, texts, k_rerank, weight

    def want(self, k: int) -> int:
        return max(k, self.k_rerank)

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        if self.reranker is None:  # weight 0: the blend is the first stage exactly, nothing to score
            return run
        reranked = self.reranker.rerank(queries, run, self.texts, self.k_rerank)
        trace["rerank"] = {q: {d: reranked[q][d] for d in list(canonical_ranking(docs))[: self.k_rerank]}
                           for q, docs in run.items()}
        return reranked if self.weight == 1 else blend(run, reranked, self.weight, self.k_rerank)


class AggregateStep(Step):
    """Paragraph hits -> their article (parent id), scored by the best paragraph."""

    name = "aggregate"

    def __init__(self, parent_of: dict[str, str], depth: int) -> None:
        self.parent_of, self.depth = parent_of, depth

    def want(self, k: int) -> int:
        return max(k, self.depth)

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        out: Run = {}
        for q, docs in run.items():
            agg: dict[str, float] = {}
            for d, s in docs.items():
                parent = self.parent_of.get(d) or d
                agg[parent] = max(agg.get(parent, float("-inf")), s)
            out[q] = agg
        return out


class RouteStep(Step):
    """Lift the candidates of the laws a query names (:func:`lextune.index.structure.route`)."""

    name = "route"

    def __init__(self, structure: Structure, config: RouteConfig, depth: int) -> None:
        self.structure, self.config, self.depth = structure, config, depth
        self.matcher = LawMatcher(structure.law.values(), family=config.family)

    def want(self, k: int) -> int:
        return max(k, self.depth)

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        c = self.config
        out = {q: route(docs, self.matcher.laws_in(queries.get(q, "")), self.structure.law, c.boost, c.hits)
               for q, docs in run.items()}
        trace["route"] = out
        return out


class ExpandStep(Step):
    """Add the provisions the top hits cite or are cited by (:func:`lextune.index.structure.expand`)."""

    name = "expand"

    def __init__(self, structure: Structure, config: ExpandConfig, depth: int) -> None:
        self.structure, self.config, self.depth = structure, config, depth

    def want(self, k: int) -> int:
        return max(k, self.depth)

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        out: Run = {}
        trace["expand"] = {}
        for q, docs in run.items():
            out[q], trace["expand"][q], notes = expand(queries.get(q, ""), docs, self.structure, self.config)
            if notes:
                trace.notes.setdefault(q, {}).update(notes)
        return out


class PoolStep(Step):
    """Lift each article's best paragraph by its other matching paragraphs (:func:`lextune.index.structure.pool`)."""

    name = "pool"

    def __init__(self, structure: Structure, config: PoolConfig) -> None:
        self.structure, self.config = structure, config

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        c = self.config
        out = {q: pool(docs, self.structure.article, c.m, c.weight) for q, docs in run.items()}
        trace["pool"] = out
        return out


def _route_step(index: LexIndex, config: PipelineConfig, _resources: PipelineResources) -> Step | None:
    return RouteStep(index.structure(), config.route, config.depth) if config.route else None


def _expand_step(index: LexIndex, config: PipelineConfig, _resources: PipelineResources) -> Step | None:
    if config.expand is None:
        return None
    if not index.has_links:
        raise ConfigError(f"{index.folder} holds no citations between its documents (refs.jsonl): rebuild it "
                          "with this version's `lextune index build` to use the pipeline's expand step")
    return ExpandStep(index.structure(), config.expand, config.depth)


def _pool_step(index: LexIndex, config: PipelineConfig, _resources: PipelineResources) -> Step | None:
    return PoolStep(index.structure(), config.pool) if config.pool else None


class FilterStep(Step):
    """Drop hits outside the pipeline's filter (what expansion or pooling brought in, what a retriever without
    a filter of its own returned)."""

    name = "filter"

    def __init__(self, allowed: frozenset[str]) -> None:
        self.allowed = allowed

    def apply(self, queries: dict[str, str], run: Run, trace: Trace) -> Run:
        return {q: {d: s for d, s in docs.items() if d in self.allowed} for q, docs in run.items()}


def _filter_step(index: LexIndex, config: PipelineConfig, _resources: PipelineResources) -> Step | None:
    return FilterStep(index.matching(config.filter)) if config.filter else None


def _rerank_step(index: LexIndex, config: PipelineConfig, resources: PipelineResources) -> Step | None:
    if config.rerank is None:
        return None
    reranker = resources.reranker(config.rerank) if config.rerank.weight > 0 else None
    return RerankStep(reranker, index.texts, config.rerank.k, config.rerank.weight)


def _aggregate_step(index: LexIndex, config: PipelineConfig, _resources: PipelineResources) -> Step | None:
    if config.aggregate != "article":
        return None
    return AggregateStep({d: v.get("parent_id") or d for d, v in index.docs.items()}, config.depth)


# In order: each factory makes its step from the config, or None when the config leaves it out.
STEPS: list[Callable[[LexIndex, PipelineConfig, PipelineResources], Step | None]] = [
    _route_step, _expand_step, _pool_step, _filter_step, _rerank_step, _aggregate_step]


def blend(first: Run, reranked: Run, weight: float, k: int) -> Run:
    """Rank-normalised blend of the first stage and the reranker on the reranked head:
    ``weight / (rank_rerank) + (1 - weight) / (rank_first)`` (both from 1); the rest keeps its order."""
    out: Run = {}
    for q, docs in reranked.items():
        head = sorted(docs.items(), key=lambda kv: -kv[1])[:k]
        # The first stage's order with evaluation's tie-break (by id), so that weight 0 gives it back exactly.
        first_ranked = list(canonical_ranking(first.get(q, {})))
        first_order = {d: i + 1 for i, d in enumerate(first_ranked)}
        scored = {d: weight / (i + 1) + (1 - weight) / first_order.get(d, len(first_order) + 1)
                  for i, (d, _) in enumerate(head)}
        tail = [d for d in first_ranked if d not in scored]
        out[q] = {**scored, **{d: -1.0 - i for i, d in enumerate(tail)}}
    return out


# -- the pipeline -----------------------------------------------------------------------------------
class Pipeline:
    """First-stage retrievers, their fusion, then the steps; ``search`` and ``explain`` rank the same way."""

    def __init__(self, index: LexIndex, config: PipelineConfig, retrievers: dict[str, Retriever],
                 steps: list[Step]) -> None:
        self.index, self.config, self.retrievers, self.steps = index, config, retrievers, steps

    def run(self, queries: dict[str, str], k: int = 10, *, skip: tuple[str, ...] = ()) -> tuple[Run, Trace]:
        """The top ``k`` per query and every part's scores; ``skip`` leaves steps out by name (``rerank``)."""
        steps = [s for s in self.steps if s.name not in skip]
        wants = [k]
        for step in reversed(steps):
            wants.insert(0, step.want(wants[0]))
        trace = Trace()
        if len(self.retrievers) == 1:
            (name, retriever), = self.retrievers.items()
            run = trace[name] = retriever.search(queries, wants[0])
        else:
            pool = max(wants[0], self.config.depth)
            for name, retriever in self.retrievers.items():
                trace[name] = retriever.search(queries, pool)
            trace["fused"] = fuse_runs([trace[n] for n in self.retrievers], self.config.fusion)
            run = run_top(trace["fused"], wants[0])
        for step, want in zip(steps, wants[1:], strict=True):
            run = run_top(step.apply(queries, run, trace), want)
        return run, trace

    def search(self, queries: dict[str, str], k: int = 10, *, skip: tuple[str, ...] = ()) -> Run:
        return self.run(queries, k, skip=skip)[0]

    def explain(self, queries: dict[str, str], k: int = 10, *, skip: tuple[str, ...] = ()) -> dict[str, list[dict]]:
        """Query id -> ranked hits ``{id, rank, score, title, text, parent_id, law, article, scores}``; ``scores`` holds what
        each part gave the hit (bm25, dense, fused, rerank; absent: not retrieved by that part); a hit that a
        step added (cross-reference expansion) has ``note``: why."""
        run, trace = self.run(queries, k, skip=skip)
        out: dict[str, list[dict]] = {}
        for q in queries:
            hits = []
            for rank, d in enumerate(list(canonical_ranking(run.get(q, {})))[:k], 1):
                doc = self.index.docs.get(d, {})
                scores = {name: float(part[q][d]) for name, part in trace.items() if d in part.get(q, {})}
                hits.append({"id": d, "rank": rank, "score": float(run[q][d]), "title": doc.get("title"),
                             "text": doc.get("text"), "parent_id": doc.get("parent_id"), "law": doc.get("law"),
                             "article": doc.get("article"), "scores": scores})
                if note := trace.notes.get(q, {}).get(d):
                    hits[-1]["note"] = note
            out[q] = hits
        return out

    @property
    def reranker(self) -> Reranker | None:
        """The cross-encoder its rerank step runs (None: no such step, or at weight 0)."""
        return next((s.reranker for s in self.steps if isinstance(s, RerankStep)), None)

    @property
    def reranks(self) -> bool:
        return self.reranker is not None


def build_pipeline(index: LexIndex, config: PipelineConfig | None = None,
                   resources: PipelineResources | None = None) -> Pipeline:
    """The one way a pipeline is made from its config."""
    config = config or PipelineConfig()
    resources = resources or PipelineResources()
    retrievers: dict[str, Retriever] = {}
    for spec in config.retrievers:
        options = spec.options
        key = (spec.name, str(index.folder), options.model_dump_json(), config.dense_model, config.query_model,
               id(resources.default_encoder), config.filter)
        retrievers[spec.name] = resources.remembered(
            key, lambda spec=spec, options=options: RETRIEVERS[spec.name].build(index, options, config, resources))
    steps = [s for make in STEPS if (s := make(index, config, resources)) is not None]
    return Pipeline(index, config, retrievers, steps)


def explain_search(index: LexIndex, queries: dict[str, str], k: int = 10, config: PipelineConfig | None = None, *,
                   encoder=None, resources: PipelineResources | None = None) -> dict[str, list[dict]]:
    """Ranked hits with each part's score (:meth:`Pipeline.explain`) of ``config`` (default: every part of
    the index, fused) over ``index``."""
    config = config or PipelineConfig(retrievers=index.parts)
    return build_pipeline(index, config, resources or PipelineResources(encoder=encoder)).explain(queries, k)
