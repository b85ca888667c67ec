"""lextune inside RAG frameworks: a LangChain and a LlamaIndex retriever over one search backend.

Either a local index searched by a pipeline YAML (the pipeline `lextune search --pipeline` and `lextune eval`
build, so what was measured is what the framework gets), or a running `lextune serve` reached by its URL
(``/v1/search``). Each hit carries its chunk id, breadcrumb, law, article and every part's score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lextune.errors import ConfigError
from lextune.extras import optional_import


class SearchBackend:
    """Ranked hits for a question: ``hits(query, k)`` -> ``[{id, rank, score, title, text, law, article, ...}]``."""

    def __init__(self, *, index: str | Path | None = None, pipeline: str | Path | None = None,
                 url: str | None = None, api_key: str | None = None, timeout: float = 30.0,
                 extra: str = "langchain") -> None:
        if (index is None) == (url is None):
            raise ConfigError("give either index (a local index folder, with an optional pipeline YAML) or url "
                              "(a running `lextune serve`)")
        self.url, self.api_key, self.timeout, self.extra = url, api_key, timeout, extra
        self._pipeline = None
        if index is not None:
            from lextune.config import load_config
            from lextune.index import LexIndex, PipelineConfig, build_pipeline

            lex = LexIndex.load(index)
            cfg = load_config(PipelineConfig, pipeline) if pipeline else PipelineConfig(retrievers=lex.parts)
            self._pipeline = build_pipeline(lex, cfg)
        elif pipeline is not None:
            raise ConfigError("with url, the server's own pipeline searches (start it with --pipeline)")

    def hits(self, query: str, k: int) -> list[dict[str, Any]]:
        if self._pipeline is not None:
            return self._pipeline.explain({"q": query}, k)["q"]
        httpx = optional_import("httpx", self.extra, "searching a lextune server")
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(self.url.rstrip("/") + "/v1/search", json={"query": query, "k": k}, headers=headers,
                              timeout=self.timeout)
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise ConfigError(f"{self.url}: /v1/search answered {response.status_code}: {message}")
        return response.json()["results"]


def hit_metadata(hit: dict[str, Any]) -> dict[str, Any]:
    """What a framework's document carries beside the text: id, breadcrumb, law, article, rank and scores."""
    meta = {"id": hit["id"], "title": hit.get("title"), "law": hit.get("law"), "article": hit.get("article"),
            "parent_id": hit.get("parent_id"), "rank": hit.get("rank"), "score": hit.get("score"),
            "scores": hit.get("scores") or {}}
    if hit.get("note"):
        meta["note"] = hit["note"]
    return meta
