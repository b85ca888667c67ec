"""``LextuneRetriever``: a LlamaIndex ``BaseRetriever`` over a lextune index and pipeline, or a `lextune serve` URL.

    from lextune.integrations.llama_index import LextuneRetriever
    retriever = LextuneRetriever(index="idx/", pipeline="pipeline.yaml", k=5)
    nodes = retriever.retrieve("보증금을 돌려받지 못하면?")   # NodeWithScore, best first
"""

from __future__ import annotations

from pathlib import Path

from lextune.extras import optional_import
from lextune.integrations import SearchBackend, hit_metadata

optional_import("llama_index.core", "llamaindex", "the LlamaIndex retriever")
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode  # noqa: E402


class LextuneRetriever(BaseRetriever):
    """Nodes for a question, best first: a ``TextNode`` per chunk (``id_`` the chunk id, ``text`` its text,
    ``metadata`` its breadcrumb, law, article, rank and scores) with the pipeline's score."""

    def __init__(self, *, index: str | Path | None = None, pipeline: str | Path | None = None,
                 url: str | None = None, api_key: str | None = None, k: int = 10, **kwargs) -> None:
        self._backend = SearchBackend(index=index, pipeline=pipeline, url=url, api_key=api_key, extra="llamaindex")
        self.k = k
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        out = []
        for h in self._backend.hits(query_bundle.query_str, self.k):
            meta = hit_metadata(h)
            node = TextNode(id_=h["id"], text=h.get("text") or "", metadata=meta,
                            excluded_embed_metadata_keys=list(meta), excluded_llm_metadata_keys=["scores", "rank"])
            out.append(NodeWithScore(node=node, score=float(h["score"])))
        return out
