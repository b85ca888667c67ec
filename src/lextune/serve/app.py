"""The FastAPI application: OpenAI-compatible embeddings, Cohere/Jina-shaped rerank, hybrid search.

Nothing in a request names a file: models and the index are fixed when the service starts, and a
request's ``model`` field only selects among the ids that ``GET /v1/models`` lists.
"""

import base64
import hmac
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lextune import __version__
from lextune.errors import ConfigError, MissingExtraError
from lextune.serve.batcher import MicroBatcher
from lextune.serve.config import ServeConfig

# FastAPI reads the endpoints' annotations at runtime: no `from __future__ import annotations` here.
try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise MissingExtraError(f'serving needs fastapi and uvicorn ({_exc}): pip install "lextune[serve]"') from _exc


def served_name(spec: str) -> str:
    """A readable model id from a spec: ``bundled:multilingual-e5-small`` -> ``multilingual-e5-small``."""
    spec = spec.rstrip("/")
    if spec.startswith("bundled:"):
        return spec.split(":", 1)[1]
    return Path(spec).name if ("/" in spec and Path(spec).exists()) or Path(spec).is_dir() else spec


# -- request and response bodies ---------------------------------------------------------------------
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


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in {
        400: "A limit was exceeded or the input is not usable.",
        401: "Missing or wrong API key.",
        404: "Unknown model, or the feature is not loaded in this server.",
        413: "Request body too large.",
        422: "The body does not match the schema.",
    }.items()
}


# -- the models behind the service -----------------------------------------------------------------------
class ServiceState:
    """Loaded models, index and batchers. Built once at start-up; requests only read it."""

    def __init__(self, config: ServeConfig, *, encoder=None, reranker=None, index=None) -> None:
        self.config = config
        self.started = int(time.time())
        self.index = index
        if self.index is None and config.index:
            from lextune.index import LexIndex

            self.index = LexIndex.load(config.index)
        self.encoder = encoder
        if encoder is not None and config.query_model and getattr(encoder, "_query", None) is None:
            raise ConfigError("config.query_model is set but the encoder handed in has none: build it as "
                              "BiEncoder(spec, query_model=...)")
        if self.encoder is None:
            spec = config.model
            if spec is None and self.index is not None and self.index.meta.get("dense_model"):
                spec = self.index.meta["dense_model"].get("spec")
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


class BodyLimit:
    """ASGI middleware: a body above the limit gets 413 before it is read whole (Content-Length or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._refuse(send)
        seen = 0
        refused = False

        async def limited_receive():
            # Past the limit: answer 413 ourselves, tell the app the client left, drop what it sends.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg):
            if not refused:
                await send(msg)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send) -> None:
        await send_error(send, 413, f"request body exceeds {self.max_bytes} bytes", "invalid_request_error",
                         "body_too_large", [(b"connection", b"close")])


async def send_error(send, status: int, message: str, type_: str, code: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """An error in the API's one shape, sent from ASGI middleware (before FastAPI has the request)."""
    import json

    body = json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


OPEN_PATHS = ("/health", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
KEY_MESSAGE = "missing or invalid API key (Authorization: Bearer KEY or X-API-Key: KEY)"


def key_matches(headers, api_key: str) -> bool:
    """``Authorization: Bearer KEY`` (scheme in any case) or ``X-API-Key: KEY``, compared in constant time."""
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    given = token.strip() if scheme.lower() == "bearer" and token.strip() else headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), api_key.encode("utf-8", "surrogatepass"))


class KeyFirst:
    """ASGI middleware: the API key is checked before the body is read or validated, so that a caller
    without the key learns nothing about the body (401, not 422) and costs no parsing."""

    def __init__(self, app, api_key: str | None, open_paths: tuple[str, ...]) -> None:
        self.app, self.api_key, self.open_paths = app, api_key, open_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.api_key is None or scope.get("path", "") in self.open_paths:
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        if key_matches(Headers(scope=scope), self.api_key):
            return await self.app(scope, receive, send)
        await send_error(send, 401, KEY_MESSAGE, "authentication_error", "invalid_api_key",
                         [(b"www-authenticate", b"Bearer")])


def create_app(config: ServeConfig | None = None, *, encoder=None, reranker=None, index=None):
    """The FastAPI app. Models may be passed in already loaded (tests, notebooks); else loaded from ``config``."""
    config = config or ServeConfig()
    state = ServiceState(config, encoder=encoder, reranker=reranker, index=index)
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    limits = config.limits

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await state.close()

    app = FastAPI(title="lextune", version=__version__, lifespan=lifespan,
                  description="Embeddings (OpenAI-compatible), reranking (Cohere/Jina shape) and hybrid search "
                              "over Korean legal text.")
    app.state.lextune = state
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(KeyFirst, api_key=api_key, open_paths=OPEN_PATHS)  # added last: runs first
    bearer = HTTPBearer(auto_error=False, description="API key (also accepted as an X-API-Key header).")

    def error_response(err: ApiError) -> JSONResponse:
        return JSONResponse(status_code=err.status, content={"error": {
            "message": err.message, "type": err.type, "param": err.param, "code": err.code}})

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError):
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        if first.get("type") == "json_invalid":  # loc is ("body", character offset): not a field
            offset = next((x for x in first.get("loc", ()) if isinstance(x, int)), None)
            reason = (first.get("ctx") or {}).get("error") or first.get("msg", "invalid JSON")
            return error_response(ApiError(400, f"the body is not valid JSON ({reason}"
                                                + (f" at character {offset})" if offset is not None else ")"),
                                           code="invalid_json"))
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(status_code=422, content={"error": {
            "message": f"{where or 'body'}: {first.get('msg', 'invalid request')}", "type": "invalid_request_error",
            "param": where or None, "code": "invalid_body"}})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException):
        codes = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        message = err.detail if isinstance(err.detail, str) else "request refused"
        if err.status_code == 400 and "parsing the body" in message:
            message = "the body could not be parsed as JSON (not UTF-8, or nested too deeply)"
        response = error_response(ApiError(err.status_code, message, code=codes.get(err.status_code, "http_error")))
        for name, value in (getattr(err, "headers", None) or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, _err: RecursionError):
        return error_response(ApiError(400, "the body is nested too deeply", code="invalid_json"))

    async def check_key(request: Request,
                        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> None:
        # KeyFirst has checked the key before the body was read; this declares it in the OpenAPI spec.
        if api_key is not None and not key_matches(request.headers, api_key):
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

    def check_texts(texts: list[str], most: int, what: str) -> None:
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

    auth = [Depends(check_key)]

    @app.get("/health", tags=["service"])
    async def health() -> dict[str, Any]:
        """Liveness and what is loaded (no key needed)."""
        return {"status": "ok", "version": __version__, "embedding_model": state.model_name,
                "backend": getattr(state.encoder, "backend", None),
                "query_model": getattr(state.encoder, "query_model_info", None), "reranker": state.reranker_name,
                "index": {"documents": len(state.index.docs)} if state.index is not None else None,
                "batching": {kind: {"calls": b.calls, "items": b.items, "busy_s": round(b.busy_s, 3)}
                             for kind, b in state.batchers.items()}}

    @app.get("/v1/models", response_model=ModelList, dependencies=auth, responses=ERRORS, tags=["service"])
    async def models() -> ModelList:
        cards = []
        if state.model_name:
            cards.append(ModelCard(id=state.model_name, created=state.started, kind="embedding"))
        if state.reranker_name:
            cards.append(ModelCard(id=state.reranker_name, created=state.started, kind="reranker"))
        return ModelList(data=cards)

    @app.post("/v1/embeddings", response_model=EmbeddingResponse, dependencies=auth, responses=ERRORS,
              tags=["models"])
    async def embeddings(req: EmbeddingRequest) -> EmbeddingResponse:
        """OpenAI-compatible embeddings; ``input_type`` picks the query or passage template."""
        name = check_model(req.model, state.model_name if state.encoder else None, "embedding")
        texts = [req.input] if isinstance(req.input, str) else req.input
        check_texts(texts, limits.max_inputs, "input")
        dim = state.encoder.get_embedding_dimension()
        if req.dimensions is not None and req.dimensions != dim:
            raise ApiError(400, f"this model makes {dim}-dimensional vectors; dimensions={req.dimensions} "
                                "is not supported", param="dimensions")
        side = {"document": "passage"}.get(req.input_type or "", req.input_type) or config.default_input_type
        results = await state.batchers[side].submit(texts)
        data = []
        for i, (vec, _n) in enumerate(results):
            emb: list[float] | str = (base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")
                                      if req.encoding_format == "base64" else vec.tolist())
            data.append(EmbeddingItem(index=i, embedding=emb))
        tokens = sum(n for _, n in results)
        return EmbeddingResponse(data=data, model=name, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True, dependencies=auth,
              responses=ERRORS, tags=["models"])
    async def rerank(req: RerankRequest) -> RerankResponse:
        """Cohere/Jina-shaped reranking: documents sorted by relevance to the query."""
        name = check_model(req.model, state.reranker_name if state.reranker else None, "reranker")
        docs = [d if isinstance(d, str) else d.text for d in req.documents]
        check_text(req.query, "query")
        check_texts(docs + [req.query], limits.max_documents + 1, "documents")
        scored = await state.batchers["rerank"].submit([(req.query, d) for d in docs])
        order = sorted(range(len(docs)), key=lambda i: -scored[i][0])[: req.top_n or len(docs)]
        results = [RerankResult(index=i, relevance_score=float(scored[i][0]),
                                document=RerankDocument(text=docs[i]) if req.return_documents else None)
                   for i in order]
        return RerankResponse(id=str(uuid.uuid4()), model=name, results=results,
                              usage=RerankUsage(total_tokens=sum(n for _, n in scored)))

    @app.post("/v1/search", response_model=SearchResponse, dependencies=auth, responses=ERRORS, tags=["search"])
    async def search(req: SearchRequest) -> SearchResponse:
        """The served index searched by the server's pipeline (default: BM25 + dense fused, then the reranker if
        one is loaded): the same ranking `lextune eval` measures for that pipeline YAML."""
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

    return app


def serve(config: ServeConfig) -> None:
    """Load the models and run the service with uvicorn until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingExtraError(f'serving needs uvicorn ({exc}): pip install "lextune[serve]"') from exc

    app = create_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", access_log=config.access_log)
