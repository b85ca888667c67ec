"""lextune: turn Korean legal and financial documents into a better retriever, without labels."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "BiEncoder"]


def __getattr__(name: str):
    # Lazy: `import lextune` must stay cheap (ingest runs without torch).
    if name == "BiEncoder":
        from lextune.models.biencoder import BiEncoder

        return BiEncoder
    raise AttributeError(name)
