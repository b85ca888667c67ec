"""The endpoints: /health, /v1/models, /v1/embeddings, /v1/rerank, /v1/search.

Each reads the service's state through a dependency (``request.app.state.lextune``); requests never name a
file, and a request's ``model`` only selects among the ids that ``GET /v1/models`` lists.
"""

# FastAPI reads the endpoints' annotations at runtime: no `from __future__ import annotations` here.
import base64
import time
import uuid
from typing import Annotated, Any

import numpy as np

from lextune import __version__
from lextune.extras import optional_import
from lextune.serve.config import ServeLimits
from lextune.serve.errors import ERRORS, ApiError
from lextune.serve.middleware import KEY_MESSAGE, key_matches
from lextune.serve.schemas import (
    EmbeddingItem,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    RerankDocument,
    RerankRequest,
    RerankResponse,
    RerankResult,
    RerankUsage,
    SearchHit,
    SearchRequest,
    SearchResponse,
    Usage,
)
from lextune.serve.state import ServiceState

optional_import("fastapi", "serve", "serving")
from fastapi import APIRouter, Depends, Request  # noqa: E402
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402

bearer = HTTPBearer(auto_error=False, description="API key (also accepted as an X-API-Key header).")


def service(request: Request) -> ServiceState:
    """The loaded models and index of the app that got the request."""
    return request.app.state.lextune


Service = Annotated[ServiceState, Depends(service)]


async def check_key(request: Request, state: Service,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
    # KeyFirst has checked the key before the body was read; this declares it in the OpenAPI spec.
    if state.api_key is not None and not key_matches(request.headers, state.api_key):
        raise ApiError(401, KEY_MESSAGE, "authentication_error", code="invalid_api_key")


def check_model(requested: str | None, served: str | None, what: str) -> str:
    if served is None:
        raise ApiError(404, f"this server was started without a {what} model", code="model_not_loaded")
    if requested not in (None, "", served):
        raise ApiError(404, f"model {requested!r} is not served here; GET /v1/models lists {served!r}",
                       param="model", code="model_not_found")
    return served


def check_text(text: str, param: str) -> None:
    """Text the tokenizers can take: JSON may carry lone surrogates (``"\\ud800"``) that are not
    Unicode text and make the tokenizer (or Kiwi) raise; they get a 400 naming the field."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApiError(400, f"{param} is not valid Unicode text: an unpaired surrogate "
                            f"U+{ord(text[exc.start]):04X} at character {exc.start}", param=param,
                       code="invalid_text") from None


def check_texts(texts: list[str], most: int, what: str, limits: ServeLimits) -> None:
    if not texts:
        raise ApiError(400, f"{what} must not be empty", param=what)
    if len(texts) > most:
        raise ApiError(400, f"{len(texts)} {what} in one request; the limit is {most}", param=what,
                       code="too_many_inputs")
    for i, t in enumerate(texts):
        check_text(t, f"{what}[{i}]")
        if len(t) > limits.max_chars:
            raise ApiError(400, f"{what}[{i}] has {len(t)} characters; the limit is {limits.max_chars}",
                           param=f"{what}[{i}]", code="input_too_long")
    total = sum(len(t) for t in texts)
    if total > limits.max_total_chars:
        raise ApiError(400, f"{total} characters in one request; the limit is {limits.max_total_chars}",
                       param=what, code="request_too_large")


router = APIRouter()
auth = [Depends(check_key)]


@router.get("/health", tags=["service"])
async def health(state: Service) -> dict[str, Any]:
    """Liveness and what is loaded (no key needed)."""
    return {"status": "ok", "version": __version__, "embedding_model": state.model_name,
            "backend": getattr(state.encoder, "backend", None),
            "query_model": getattr(state.encoder, "query_model_info", None), "reranker": state.reranker_name,
            "index": {"documents": len(state.index.docs)} if state.index is not None else None,
            "batching": {kind: {"calls": b.calls, "items": b.items, "busy_s": round(b.busy_s, 3)}
                         for kind, b in state.batchers.items()}}


@router.get("/v1/models", response_model=ModelList, dependencies=auth, responses=ERRORS, tags=["service"])
async def models(state: Service) -> ModelList:
    cards = []
    if state.model_name:
        cards.append(ModelCard(id=state.model_name, created=state.started, kind="embedding"))
    if state.reranker_name:
        cards.append(ModelCard(id=state.reranker_name, created=state.started, kind="reranker"))
    return ModelList(data=cards)


@router.post("/v1/embeddings", response_model=EmbeddingResponse, dependencies=auth, responses=ERRORS,
             tags=["models"])
async def embeddings(req: EmbeddingRequest, state: Service) -> EmbeddingResponse:
    """OpenAI-compatible embeddings; ``input_type`` picks the query or passage template."""
    name = check_model(req.model, state.model_name if state.encoder else None, "embedding")
    texts = [req.input] if isinstance(req.input, str) else req.input
    check_texts(texts, state.config.limits.max_inputs, "input", state.config.limits)
    dim = state.encoder.get_embedding_dimension()
    if req.dimensions is not None and req.dimensions != dim:
        raise ApiError(400, f"this model makes {dim}-dimensional vectors; dimensions={req.dimensions} "
                            "is not supported", param="dimensions")
    side = {"document": "passage"}.get(req.input_type or "", req.input_type) or state.config.default_input_type
    results = await state.batchers[side].submit(texts)
    data = []
    for i, (vec, _n) in enumerate(results):
        emb: list[float] | str = (base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
                                  if req.encoding_format == "base64" else vec.tolist())
        data.append(EmbeddingItem(index=i, embedding=emb))
    tokens = sum(n for _, n in results)
    return EmbeddingResponse(data=data, model=name, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


@router.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True, dependencies=auth,
             responses=ERRORS, tags=["models"])
async def rerank(req: RerankRequest, state: Service) -> RerankResponse:
    """Cohere/Jina-shaped reranking: documents sorted by relevance to the query."""
    name = check_model(req.model, state.reranker_name if state.reranker else None, "reranker")
    docs = [d if isinstance(d, str) else d.text for d in req.documents]
    check_text(req.query, "query")
    check_texts(docs + [req.query], state.config.limits.max_documents + 1, "documents", state.config.limits)
    scored = await state.batchers["rerank"].submit([(req.query, d) for d in docs])
    order = sorted(range(len(docs)), key=lambda i: -scored[i][0])[: req.top_n or len(docs)]
    results = [RerankResult(index=i, relevance_score=float(scored[i][0]),
                            document=RerankDocument(text=docs[i]) if req.return_documents else None)
               for i in order]
    return RerankResponse(id=str(uuid.uuid4()), model=name, results=results,
                          usage=RerankUsage(total_tokens=sum(n for _, n in scored)))


@router.post("/v1/search", response_model=SearchResponse, dependencies=auth, responses=ERRORS, tags=["search"])
async def search(req: SearchRequest, state: Service) -> SearchResponse:
    """The served index searched by the server's pipeline (default: BM25 + dense fused, then the reranker if
    one is loaded): the same ranking `lextune eval` measures for that pipeline YAML."""
    limits = state.config.limits
    if state.index is None:
        raise ApiError(404, "this server was started without --index", code="index_not_loaded")
    if req.k > limits.max_k:
        raise ApiError(400, f"k={req.k} exceeds the limit {limits.max_k}", param="k")
    check_text(req.query, "query")
    if len(req.query) > limits.max_chars:
        raise ApiError(400, f"query has {len(req.query)} characters; the limit is {limits.max_chars}",
                       param="query", code="input_too_long")
    if req.rerank and not state.pipeline.reranks:
        raise ApiError(400, "rerank=true but this server's search pipeline has no reranker (start it with "
                       "--reranker, or a --pipeline with rerank:)", param="rerank")
    do_rerank = state.pipeline.reranks if req.rerank is None else req.rerank
    t = time.perf_counter()
    (hits,) = await state.batchers["search"].submit([(req.query, req.k, do_rerank)])
    return SearchResponse(query=req.query, results=[SearchHit(**h) for h in hits], reranked=do_rerank,
                          took_ms=(time.perf_counter() - t) * 1000)
