"""The FastAPI application: OpenAI-compatible embeddings, Cohere/Jina-shaped rerank, hybrid search.

Its rooms: ``schemas`` (bodies), ``state`` (models, index, pipeline, batchers), ``middleware`` (API key and
body limit before a body is read), ``errors`` (one error shape) and ``routes`` (the endpoints).
Nothing in a request names a file: models and the index are fixed when the service starts.
"""

from contextlib import asynccontextmanager

from lextune import __version__
from lextune.extras import optional_import
from lextune.serve.config import ServeConfig
from lextune.serve.errors import install_error_handlers
from lextune.serve.middleware import OPEN_PATHS, BodyLimit, KeyFirst
from lextune.serve.routes import router
from lextune.serve.state import ServiceState

optional_import("fastapi", "serve", "serving")
from fastapi import FastAPI  # noqa: E402


def create_app(config: ServeConfig | None = None, *, encoder=None, reranker=None, index=None):
    """The FastAPI app. Models may be passed in already loaded (tests, notebooks); else loaded from ``config``."""
    state = ServiceState(config or ServeConfig(), encoder=encoder, reranker=reranker, index=index)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await state.close()

    app = FastAPI(title="lextune", version=__version__, lifespan=lifespan,
                  description="Embeddings (OpenAI-compatible), reranking (Cohere/Jina shape) and hybrid search "
                              "over Korean legal text.")
    app.state.lextune = state
    app.add_middleware(BodyLimit, max_bytes=state.config.limits.max_body_bytes)
    app.add_middleware(KeyFirst, api_key=state.api_key, open_paths=OPEN_PATHS)  # added last: runs first
    install_error_handlers(app)
    app.include_router(router)
    return app


def serve(config: ServeConfig) -> None:
    """Load the models and run the service with uvicorn until interrupted."""
    uvicorn = optional_import("uvicorn", "serve", "serving")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info",
                access_log=config.access_log)
