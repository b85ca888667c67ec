"""Retrieval engine: Korean BM25, dense FAISS index, fusion, reranking, and the one pipeline built from YAML."""

from lextune.index.lexindex import IndexBuildConfig, LexIndex, build_index, docs_from_beir, docs_from_chunks
from lextune.index.pipeline import (
    Pipeline,
    PipelineConfig,
    PipelineResources,
    build_pipeline,
    register_retriever,
)

__all__ = ["IndexBuildConfig", "LexIndex", "Pipeline", "PipelineConfig", "PipelineResources", "build_index",
           "build_pipeline", "docs_from_beir", "docs_from_chunks", "register_retriever", "search"]


def search(index: LexIndex, queries: dict[str, str], k: int = 10, config: PipelineConfig | None = None):
    """Run a pipeline over ``queries`` (id -> text) and return the run (id -> chunk id -> score)."""
    return build_pipeline(index, config or PipelineConfig(retrievers=index.parts)).search(queries, k)
