"""What the service serves: models, index, search pipeline and micro-batchers, built once at start-up."""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lextune.errors import ConfigError
from lextune.serve.batcher import MicroBatcher
from lextune.serve.config import ServeConfig


def served_name(spec: str) -> str:
    """A readable model id from a spec: ``bundled:multilingual-e5-small`` -> ``multilingual-e5-small``."""
    spec = spec.rstrip("/")
    if spec.startswith("bundled:"):
        return spec.split(":", 1)[1]
    return Path(spec).name if ("/" in spec and Path(spec).exists()) or Path(spec).is_dir() else spec


class ServiceState:
    """Loaded models, index and batchers. Built once at start-up; requests only read it."""

    def __init__(self, config: ServeConfig, *, encoder=None, reranker=None, index=None) -> None:
        self.config = config
        self.started = int(time.time())
        self.api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
        self.index = index
        if self.index is None and config.index:
            from lextune.index import LexIndex

            self.index = LexIndex.load(config.index)
        self.encoder = encoder
        if encoder is not None and config.query_model and not getattr(encoder, "has_query_model", False):
            raise ConfigError("config.query_model is set but the encoder handed in has none: build it as "
                              "BiEncoder(spec, query_model=...)")
        if self.encoder is None:
            spec = config.model
            if spec is None and self.index is not None:
                spec = self.index.dense_spec
            if spec:
                from lextune.models.biencoder import BiEncoder

                self.encoder = BiEncoder(spec, device=config.device, backend=config.backend,
                                         query_model=config.query_model)
        self.reranker = reranker
        if self.reranker is None and config.reranker:
            from lextune.index.rerank import RerankConfig, Reranker

            self.reranker = Reranker(RerankConfig(model=config.reranker, k=config.rerank_depth,
                                                  max_length=config.reranker_max_length), device=config.device)
        self.pipeline = self._build_pipeline() if self.index is not None else None  # refuses bad settings now
        self.model_name = config.model_name or (served_name(self.encoder.spec) if self.encoder else None)
        self.reranker_name = config.reranker_name or (
            served_name(self.reranker.config.model) if self.reranker else None)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lextune-model",
                                           initializer=self._init_model_thread)
        b = config.batching
        mk = lambda fn, name: MicroBatcher(fn, self.executor, max_batch=b.max_batch,  # noqa: E731
                                           max_wait_ms=b.max_wait_ms, name=name)
        self.batchers = {
            "query": mk(lambda texts: self._embed(texts, "query"), "embed-query"),
            "passage": mk(lambda texts: self._embed(texts, "passage"), "embed-passage"),
            "rerank": mk(self._score_pairs, "rerank"),
            "search": mk(self._search, "search"),
        }

    def _build_pipeline(self):
        """The /v1/search pipeline, built as `lextune eval` builds it, over the service's own models."""
        from lextune.index.pipeline import PipelineConfig, PipelineRerank, PipelineResources, build_pipeline

        cfg = self.config.pipeline
        if cfg is None:
            rerank = None
            if self.reranker is not None:
                rerank = PipelineRerank(**self.reranker.config.model_dump() | {"k": self.config.rerank_depth})
            cfg = PipelineConfig(retrievers=self.index.parts, depth=self.config.search_depth, rerank=rerank)
        shared = [self.encoder] if self.encoder is not None and not self.config.query_model else []
        pipeline = build_pipeline(self.index, cfg, PipelineResources(encoder=self.encoder, encoders=shared,
                                                                     reranker=self.reranker))
        if self.reranker is None:  # the pipeline's reranker (if any) answers /v1/rerank too
            self.reranker = pipeline.reranker
        return pipeline

    # model calls (run in the executor thread) ---------------------------------------------------------
    def _init_model_thread(self) -> None:
        """OpenMP's thread count is a per-thread setting: set it in the thread that runs the searches (set in
        the main thread it left faiss its default two threads there, whose second took CPU from the model)."""
        if self.index is not None and self.index.has_dense and self.config.faiss_threads:
            import faiss

            faiss.omp_set_num_threads(self.config.faiss_threads)

    def _embed(self, texts: list[str], side: str) -> list[tuple[np.ndarray, int]]:
        vecs, counts = self.encoder.encode_with_token_counts(texts, "query" if side == "query" else "passage")
        return list(zip(vecs, counts, strict=True))

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[tuple[float, int]]:
        scores = self.reranker.score(pairs)
        tok = self.reranker.model.tokenizer
        lengths = [len(x) for x in tok([q for q, _ in pairs], [d for _, d in pairs], truncation=True,
                                        max_length=self.reranker.config.max_length)["input_ids"]]
        return list(zip(scores, lengths, strict=True))

    def _search(self, items: list[tuple[str, int, bool]]) -> list[list[dict]]:
        results: list[list[dict] | None] = [None] * len(items)
        for rerank in (False, True):
            group = [i for i, (_, _, r) in enumerate(items) if r == rerank]
            if not group:
                continue
            queries = {str(i): items[i][0] for i in group}
            k = max(items[i][1] for i in group)
            hits = self.pipeline.explain(queries, k, skip=() if rerank else ("rerank",))
            for i in group:
                results[i] = hits[str(i)][: items[i][1]]
        return results  # type: ignore[return-value]

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
