"""Request and response bodies of the service (OpenAI embeddings, Cohere/Jina rerank, lextune search)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(..., description="A text or a list of texts (token arrays are not accepted).")
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["query", "passage", "document"] | None = Field(
        None, description="Which side to embed as (lextune extension; default: the server's default_input_type).")
    dimensions: int | None = Field(None, description="Must equal the model's dimension when given.")
    user: str | None = None


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    documents: list[str | RerankDocument]
    model: str | None = None
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    k: int = Field(10, ge=1)
    rerank: bool | None = Field(None, description="Run the pipeline's reranker (default: when it has one).")


class SearchHit(BaseModel):
    id: str
    rank: int
    score: float
    title: str | None = Field(None, description="Breadcrumb: law > chapter > article > paragraph.")
    text: str | None = None
    parent_id: str | None = None
    law: str | None = Field(None, description="The law the hit belongs to (statutes and statute-like documents).")
    article: str | None = Field(None, description="Its article: '6의2' is 제6조의2.")
    scores: dict[str, float] = Field(default_factory=dict, description="What each part gave the hit: bm25, dense, "
                                     "fused, route, expand, pool, rerank.")
    note: str | None = Field(None, description="Why a step added the hit (cross-reference expansion: "
                             "'cited by 상법 제665조(…)').")


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]
    reranked: bool
    took_ms: float


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "lextune"
    kind: Literal["embedding", "reranker"]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
