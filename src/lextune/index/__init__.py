"""Retrieval engine: Korean BM25, dense FAISS index, fusion, reranking, composable pipelines."""

from lextune.index.pipeline import (
    IndexBuildConfig,
    LexIndex,
    PipelineConfig,
    build_index,
    docs_from_beir,
    docs_from_chunks,
)

__all__ = ["IndexBuildConfig", "LexIndex", "PipelineConfig", "build_index", "docs_from_beir", "docs_from_chunks",
           "search"]


def search(index: LexIndex, queries: dict[str, str], k: int = 10, config: PipelineConfig | None = None):
    """Run a pipeline over ``queries`` (id -> text) and return the run (id -> chunk id -> score)."""
    return index.pipeline(config).search(queries, k)
