"""HTTP service: OpenAI-compatible /v1/embeddings, /v1/rerank, /v1/search, /health, /v1/models."""

from lextune.serve.config import BatchingConfig, ServeConfig, ServeLimits

__all__ = ["BatchingConfig", "ServeConfig", "ServeLimits", "create_app", "serve"]


def create_app(*args, **kwargs):
    from lextune.serve.app import create_app as _create

    return _create(*args, **kwargs)


def serve(config: ServeConfig) -> None:
    from lextune.serve.app import serve as _serve

    _serve(config)
