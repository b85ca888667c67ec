"""``LextuneRetriever``: a LangChain ``BaseRetriever`` over a lextune index and pipeline, or a `lextune serve` URL.

    from lextune.integrations.langchain import LextuneRetriever
    retriever = LextuneRetriever(index="idx/", pipeline="pipeline.yaml", k=5)
    docs = retriever.invoke("보증금을 돌려받지 못하면?")   # Documents, best first
"""

from __future__ import annotations

from typing import Any

from lextune.extras import optional_import
from lextune.integrations import SearchBackend, hit_metadata

optional_import("langchain_core", "langchain", "the LangChain retriever")
from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import PrivateAttr  # noqa: E402


class LextuneRetriever(BaseRetriever):
    """Documents for a question, best first: ``page_content`` the chunk's text, ``metadata`` its id,
    breadcrumb (``title``), law, article, rank and each part's score; ``id`` the chunk id."""

    index: str | None = None
    pipeline: str | None = None
    url: str | None = None
    api_key: str | None = None
    k: int = 10
    _backend: SearchBackend = PrivateAttr()

    def model_post_init(self, context: Any) -> None:
        self._backend = SearchBackend(index=self.index, pipeline=self.pipeline, url=self.url, api_key=self.api_key)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=h.get("text") or "", metadata=hit_metadata(h), id=h["id"])
                for h in self._backend.hits(query, self.k)]
