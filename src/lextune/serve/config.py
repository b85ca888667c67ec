"""Settings of the HTTP service (YAML-loadable, like every stage's config)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.index.pipeline import PipelineConfig
from lextune.models.onnx import Backend


class ServeLimits(BaseModel):
    """What one request may ask for; more is answered with a 4xx that says which limit."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Request bodies above this get 413.")
    max_inputs: int = Field(512, ge=1, description="Texts in one /v1/embeddings request.")
    max_documents: int = Field(1000, ge=1, description="Documents in one /v1/rerank request.")
    max_chars: int = Field(20_000, ge=1, description="Characters in one input text, query or document.")
    max_total_chars: int = Field(1_000_000, ge=1, description="Characters in all texts of one request.")
    max_k: int = Field(100, ge=1, description="Largest k of /v1/search.")


class BatchingConfig(BaseModel):
    """Concurrent requests are gathered into one model call of up to ``max_batch`` texts."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(64, ge=1)
    max_wait_ms: float = Field(
        0.0, ge=0, description="How long the first request of a batch waits for company. 0 (greedy): a batch is "
        "what queued while the model was busy, and a lone request runs at once (measured: c=1 search p50 38 "
        "instead of 49 ms, c=8 throughput unchanged; docs/benchmarks.md).")


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field("bundled:multilingual-e5-small", description="Embedding model spec (None: the index's).")
    model_name: str | None = Field(None, description="Id the model is served under (default: from the spec).")
    query_model: str | None = Field(
        None, description="A query encoder distilled from the embedding model (`lextune train query-encoder`): "
        "queries of /v1/search and query-side /v1/embeddings are encoded with it (fewer layers, faster); "
        "passages and the index stay the embedding model's.")
    reranker: str | None = Field(None, description="Cross-encoder spec for /v1/rerank and reranked search.")
    reranker_name: str | None = None
    reranker_max_length: int = Field(512, ge=8)
    index: str | None = Field(None, description="Index folder for /v1/search (lextune index build).")
    rerank_depth: int = Field(50, ge=1, description="Search hits the reranker re-scores (default pipeline).")
    search_depth: int = Field(100, ge=1, description="Hits taken from each retriever before fusion (default pipeline).")
    pipeline: PipelineConfig | None = Field(
        None, description="What /v1/search runs: the same YAML that `lextune eval -s NAME=FILE` measures "
        "(`lextune serve --pipeline FILE`). Default: every part of the index fused by RRF over search_depth "
        "hits, then the reranker (if any) over rerank_depth.")
    default_input_type: Literal["query", "passage"] = Field(
        "query", description="Side of /v1/embeddings inputs when the request names no input_type.")
    api_key_env: str | None = Field("LEXTUNE_API_KEY", description="Env var holding the API key; unset: no key.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    device: str | None = None
    backend: Backend = Field(
        "auto", description="How the embedding model runs: auto = ONNX Runtime at fp32 on a CPU when installed "
        "(same vectors, ~1.7x faster per query), else torch; onnx-int8 is faster still but loses some "
        "accuracy (docs/benchmarks.md).")
    access_log: bool = Field(False, description="One log line per request (costs CPU under load).")
    faiss_threads: int | None = Field(1, ge=1, description="OpenMP threads of the dense search (None: faiss's "
                                      "default). One answers a few queries fastest while the model uses the cores.")
    limits: ServeLimits = Field(default_factory=ServeLimits)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)


def run_settings(run_dir: str | Path) -> dict:
    """ServeConfig values that serve what a `lextune run` recommends: its index and ``recommended.yaml``
    (the query encoder is the pipeline's dense model, else the index's)."""
    from lextune.config import load_config
    from lextune.errors import ConfigError

    run_dir = Path(run_dir)
    rec = run_dir / "recommended.yaml"
    if not rec.is_file() or not (run_dir / "index" / "meta.json").is_file():
        raise ConfigError(f"{run_dir} has no recommended.yaml and index/: give a folder that `lextune run` "
                          "finished (its eval stage writes recommended.yaml)")
    pipeline = load_config(PipelineConfig, rec)
    return {"index": str(run_dir / "index"), "pipeline": pipeline, "model": pipeline.dense_model}
