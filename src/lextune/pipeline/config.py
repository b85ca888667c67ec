"""The one YAML file of ``lextune run``: inputs, every stage's settings, and what to evaluate on."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lextune.index.bm25 import BM25Config
from lextune.ingest.pipeline import IngestConfig
from lextune.mine import MineConfig
from lextune.synth.pipeline import SynthConfig
from lextune.train.biencoder import BiEncoderSettings
from lextune.train.reranker import RerankerSettings

_RUN_SET = {"train_file", "corpus", "output_dir", "base_model"}  # filled in by the run, never in a section


class EvalDataset(BaseModel):
    """A labelled set to compare base and tuned pipelines on.

    ``path: null`` is the run's own synthetic validation split. ``corpus: run`` searches the run's
    index (the dataset's ids must be the run's chunk ids, as when the run ingested that dataset's
    corpus.jsonl); ``own`` indexes the dataset's corpus.jsonl first.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str | None = None
    queries_files: list[str] = Field(default_factory=lambda: ["queries.jsonl"])
    split: str = "dev"
    corpus: Literal["run", "own"] = "run"
    max_queries: int | None = Field(None, ge=1, description="Evaluate a stable sample of this many queries.")
    stratify: bool = Field(True, description="Sample synthetic queries from each generator in turn, so that no one "
                                             "kind (e.g. verbatim inverse-cloze sentences) fills the sample.")


class ValidationSet(BaseModel):
    """The user's own labelled questions over the run's corpus (a BEIR folder whose qrels name the run's chunk
    ids, e.g. exported by a labelling tool): what the run's recommendation is judged on first."""

    model_config = ConfigDict(extra="forbid")

    path: str
    queries_file: str = "queries.jsonl"
    split: str = "dev"


class EvalStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datasets: list[EvalDataset] = Field(default_factory=lambda: [EvalDataset(name="synthetic-dev")])
    k_rerank: int = Field(50, ge=1, description="Hybrid hits the trained reranker re-scores.")
    rerank_max_length: int = Field(512, ge=16, description="Tokens of query + passage the reranker reads, as "
                                   "`lextune serve` does (reranker_max_length), not the shorter training length.")
    rerank_weight: float | Literal["auto"] | None = Field(
        "auto", description="Blend of reranker and first-stage ranks (0..1, rank-normalised); None: reranker order "
        "only; auto: the weight that maximises nDCG@10 on the run's validation queries (`validation:`, else held-out "
        "precedent or synthetic queries; never a benchmark), 0 when the reranker does not help there significantly "
        "(weight_max_p).")
    weight_queries: int = Field(100, ge=1, description="Held-out precedent or synthetic queries that choose the "
                                "recommended system and an auto weight (when the run has no `validation:` set).")
    recommend_max_p: float = Field(0.05, gt=0, le=1, description="recommended.yaml names a system other than BM25 "
                                   "only when its validation gain over BM25 passes a paired t-test at this p.")
    wsum_weights: list[float] = Field(
        default_factory=lambda: [0.3, 0.5, 0.7], description="Dense weights of the weighted-sum hybrids among the "
        "candidates (BM25 gets 1 - w; min-max normalised); tried only on the user's own labelled questions.")
    weight_max_p: float = Field(0.05, gt=0, le=1, description="An auto weight above 0 is kept only when its "
                                "validation gain over the first stage passes a paired t-test at this p (1: always).")
    structure_steps: list[Literal["route", "expand", "pool"]] = Field(
        default_factory=lambda: ["route", "expand", "pool"], description="Structure steps tried on BM25 and on the "
        "best first stage (each alone and all together, at their defaults); one is kept only when its validation "
        "gain over the same first stage passes a paired t-test at weight_max_p. []: none tried.")
    rrf_k: int = Field(60, ge=1)
    report: bool = True


    @field_validator("wsum_weights")
    @classmethod
    def _unit(cls, v):
        if any(not 0 < w < 1 for w in v):
            raise ValueError("wsum_weights must lie strictly between 0 and 1")
        return v

    @field_validator("rerank_weight")
    @classmethod
    def _weight_range(cls, v):
        if isinstance(v, float) and not 0 <= v <= 1:
            raise ValueError("rerank_weight must lie in [0, 1], or be 'auto' or null")
        return v


class TargetedConfig(BaseModel):
    """The failure-driven second pass (see :mod:`lextune.pipeline.targeted`)."""

    model_config = ConfigDict(extra="forbid")

    failure_rank: int = Field(1, ge=1, description="A validation query fails when its gold ranks below this.")
    max_failures: int = Field(500, ge=1)
    queries_per_gold: int = Field(3, ge=1, description="New offline queries around every missed gold chunk.")
    n_negatives: int = Field(1, ge=1, description="Negatives per record, from the chunks that outranked the gold.")
    replay_ratio: float = Field(0.5, ge=0, description="Earlier training records added per new record.")
    check_fraction: float = Field(0.5, gt=0, lt=1, description="Validation queries kept apart to judge the pass.")
    train: dict[str, Any] = Field(default_factory=lambda: {"learning_rate": 1e-5, "epochs": 1.0},
                                  description="Overrides of the bi-encoder settings for the continued training.")
    seed: int = 13


class RunConfig(BaseModel):
    """``lextune run pipeline.yaml``."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str = "lextune-run"
    inputs: list[str] = Field(..., min_length=1, description="Files or folders for ingest.")
    base_model: str = "bundled:multilingual-e5-small"
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig)
    bm25: BM25Config = Field(default_factory=BM25Config)
    dense_index: bool = Field(True, description="Encode every passage with base_model into the run's index. Off "
                              "(a large corpus on CPU): mining scores with BM25 (mine.scorer: bm25) and evaluation "
                              "encodes the passages it needs when it needs them (cached).")
    dense_index_type: Literal["flat", "hnsw", "ivf", "auto"] = "flat"
    mine: MineConfig = Field(default_factory=MineConfig)
    train_biencoder: BiEncoderSettings | None = Field(
        default_factory=BiEncoderSettings, description="How the bi-encoder trains (the base model and the files are "
        "the run's); null: no bi-encoder training.")
    train_reranker: RerankerSettings | None = Field(
        default_factory=RerankerSettings, description="How the reranker trains (the base model and the files are the "
        "run's); null: no reranker.")
    reranker_init: Literal["base", "biencoder"] = Field(
        "base", description="Start the reranker's encoder from base_model, or from the run's fine-tuned bi-encoder "
        "(adapted to the corpus by train_biencoder; the classification head is new either way).")
    eval: EvalStageConfig = Field(default_factory=EvalStageConfig)
    validation: ValidationSet | None = Field(
        None, description="Your labelled questions over this corpus: the candidates (BM25, dense, hybrids, with "
        "and without the reranker) are judged on them. Without it, held-out precedent queries (synth generator "
        "`precedents`) judge, else the synthetic validation split, and the fusion stays RRF.")
    targeted: TargetedConfig | None = Field(default_factory=TargetedConfig)
    layer_cache_gb: float = Field(2.0, ge=0, description=(
        "Memory for the outputs of the bi-encoder's frozen bottom layers (train_biencoder.train_layers), "
        "shared by the base, tuned and targeted models of the run and across training steps; 0: off."))

    @field_validator("train_biencoder", "train_reranker", mode="before")
    @classmethod
    def _no_run_fields(cls, v: Any) -> Any:
        if isinstance(v, dict) and (bad := set(v) & _RUN_SET):
            raise ValueError(f"{sorted(bad)} are set by the run (base_model is the top-level one)")
        return v

    @model_validator(mode="after")
    def _check_training_sections(self) -> RunConfig:
        if not self.dense_index and self.mine.scorer == "dense":
            raise ValueError("dense_index: false leaves the index without a dense part: set mine.scorer to bm25 "
                             "(or reranker)")
        if self.reranker_init == "biencoder" and (self.train_biencoder is None or self.train_reranker is None):
            raise ValueError("reranker_init: biencoder needs both train_biencoder and train_reranker")
        if self.targeted is not None and self.train_biencoder is None:
            raise ValueError("targeted continues the bi-encoder: it needs train_biencoder")
        return self
