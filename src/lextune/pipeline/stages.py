"""The stages of ``lextune run``, one registry entry each: the runner, the stages it reads, the part of the run's
config that is its key, the input files hashed into that key, and when it is on.

Adding a stage is one :func:`stage` entry (in pipeline order); ``lextune run``, its ``--from``/``--until``, the
stage keys (cache) and the manifest all read the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lextune.errors import ConfigError
from lextune.pipeline.config import RunConfig

Progress = Callable[[str, str], None]  # (stage, message)


@dataclass
class RunContext:
    config: RunConfig
    root: Path
    keys: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, dict] = field(default_factory=dict)
    progress: Progress | None = None

    def dir(self, stage: str) -> Path:
        return self.root / stage

    def say(self, stage: str, message: str) -> None:
        if self.progress:
            self.progress(stage, message)

    @property
    def biencoder(self) -> Path | None:
        d = self.dir("train_biencoder") / "model"
        return d if self.config.train_biencoder is not None and d.is_dir() else None

    @property
    def reranker(self) -> Path | None:
        d = self.dir("train_reranker") / "model"
        return d if self.config.train_reranker is not None and d.is_dir() else None


@dataclass(frozen=True)
class StageSpec:
    """One stage of the run."""

    name: str
    run: Callable[[RunContext], dict]
    upstream: Callable[[RunConfig], list[str]]
    config: Callable[[RunConfig], Any]  # what of the run's config the stage's key holds
    inputs: Callable[[RunConfig], list[str]]  # files whose contents the key holds
    enabled: Callable[[RunConfig], bool]


STAGES: dict[str, StageSpec] = {}


def stage(name: str, *, upstream: list[str] | Callable[[RunConfig], list[str]] = (), config: Callable[[RunConfig], Any],
          inputs: Callable[[RunConfig], list[str]] | None = None, enabled: Callable[[RunConfig], bool] | None = None,
          after: str | None = None):
    """Register the decorated runner as stage ``name`` (at the end, or right after stage ``after``)."""
    ups = upstream if callable(upstream) else (lambda cfg, fixed=list(upstream): fixed)

    def register(fn: Callable[[RunContext], dict]) -> Callable[[RunContext], dict]:
        spec = StageSpec(name, fn, ups, config, inputs or (lambda cfg: []), enabled or (lambda cfg: True))
        items = [(k, v) for k, v in STAGES.items() if k != name]
        at = len(items) if after is None else [k for k, _ in items].index(after) + 1
        items.insert(at, (name, spec))
        STAGES.clear()
        STAGES.update(items)
        return fn

    return register


def _section(section) -> dict:
    """A training section with every field (the recipe resolved): the stage's key, the same whether a default
    is written down or not (a saved pipeline.yaml reloads to the same key), and what the trainer's config is
    built from."""
    return {} if section is None else section.model_dump(mode="json")


@stage("ingest", config=lambda c: {"ingest": c.ingest.model_dump(mode="json"), "inputs": sorted(c.inputs)},
       inputs=lambda c: list(c.inputs))
def _ingest(ctx: RunContext) -> dict:
    from lextune.ingest import ingest

    return ingest(ctx.config.inputs, ctx.dir("ingest"), ctx.config.ingest).to_dict()


@stage("synth", upstream=["ingest"], config=lambda c: c.synth.model_dump(mode="json"),
       inputs=lambda c: list(c.synth.precedents or []))  # court decisions are inputs of synth
def _synth(ctx: RunContext) -> dict:
    from lextune.synth import synth

    return synth(ctx.dir("ingest"), ctx.dir("synth"), ctx.config.synth).to_dict()


@stage("index", upstream=["ingest"], config=lambda c: {
    "bm25": c.bm25.model_dump(mode="json"), "model": c.base_model, "type": c.dense_index_type,
    **({} if c.dense_index else {"dense": False})})
def _index(ctx: RunContext) -> dict:
    from lextune.index import IndexBuildConfig, build_index
    from lextune.index.dense import DenseConfig
    from lextune.ingest import read_chunks
    from lextune.ingest.refs import linked_docs

    docs, links = linked_docs(read_chunks(ctx.dir("ingest")))
    cfg = IndexBuildConfig(bm25=ctx.config.bm25,
                           dense=DenseConfig(model=ctx.config.base_model, index_type=ctx.config.dense_index_type)
                           if ctx.config.dense_index else None)
    from lextune.progress import every

    build_index(docs, ctx.dir("index"), cfg, source={"chunks": str(ctx.dir("ingest"))},
                progress=every(60, lambda m: ctx.say("index", m)), links=links)
    return {"documents": len(docs), "links": len(links)}


@stage("mine", upstream=["synth", "index"], config=lambda c: c.mine.model_dump(mode="json"))
def _mine(ctx: RunContext) -> dict:
    from lextune.mine import mine

    out = ctx.dir("mine")
    out.mkdir(parents=True, exist_ok=True)
    refs = ctx.dir("ingest") / "refs.jsonl"
    from lextune.progress import every

    return mine(ctx.dir("synth"), ctx.dir("index"), out / "train.jsonl", ctx.config.mine,
                refs=refs if refs.is_file() else None,
                progress=every(60, lambda m: ctx.say("mine", m), "mining queries")).to_dict()


def biencoder_config(ctx: RunContext, **overrides):
    """The run's bi-encoder settings with its base model and files (validation: its synthetic split)."""
    from lextune.train.biencoder import BiEncoderTrainConfig

    values = {**_section(ctx.config.train_biencoder), "base_model": ctx.config.base_model,
              "train_file": str(ctx.dir("mine") / "train.jsonl"), "corpus": str(ctx.dir("index")),
              "output_dir": str(ctx.dir("train_biencoder") / "model")}
    if values.get("eval") and not values["eval"].get("data"):
        values["eval"] = {**values["eval"], "data": str(ctx.dir("synth"))}
    return BiEncoderTrainConfig.model_validate({**values, **overrides})


@stage("train_biencoder", upstream=["mine", "synth"], enabled=lambda c: c.train_biencoder is not None,
       config=lambda c: {"base": c.base_model, **_section(c.train_biencoder)})
def _train_biencoder(ctx: RunContext) -> dict:
    from lextune.train.biencoder import train_biencoder

    cfg = biencoder_config(ctx)
    s = train_biencoder(cfg, progress=lambda m: ctx.say("train_biencoder", m))
    return {k: v for k, v in s.items() if k != "loss_history"}


@stage("train_reranker", enabled=lambda c: c.train_reranker is not None,
       upstream=lambda c: ["mine"] + (["train_biencoder"] if c.reranker_init == "biencoder" else []),
       config=lambda c: {"base": c.base_model, **_section(c.train_reranker),
                         **({"init": "biencoder"} if c.reranker_init == "biencoder" else {})})
def _train_reranker(ctx: RunContext) -> dict:
    from lextune.train.reranker import RerankerTrainConfig, train_reranker

    base = ctx.config.base_model
    if ctx.config.reranker_init == "biencoder":
        if ctx.biencoder is None:
            raise ConfigError("reranker_init: biencoder, but the run has no trained bi-encoder (stage train_biencoder)")
        base = str(ctx.biencoder)
    cfg = RerankerTrainConfig.model_validate({**_section(ctx.config.train_reranker), "base_model": base,
                                              "train_file": str(ctx.dir("mine") / "train.jsonl"),
                                              "corpus": str(ctx.dir("index")),
                                              "output_dir": str(ctx.dir("train_reranker") / "model")})
    return train_reranker(cfg, progress=lambda m: ctx.say("train_reranker", m))


@stage("eval", upstream=["index", "synth", "train_biencoder", "train_reranker"],
       config=lambda c: {**c.eval.model_dump(mode="json"),
                         **({"validation": c.validation.model_dump()} if c.validation else {})},
       inputs=lambda c: [c.validation.path] if c.validation else [])  # the user's labelled questions
def _eval(ctx: RunContext) -> dict:
    from lextune.pipeline.compare import compare

    return compare(ctx)


@stage("targeted", upstream=["synth", "index", "mine", "train_biencoder"], enabled=lambda c: c.targeted is not None,
       config=lambda c: c.targeted.model_dump(mode="json") if c.targeted else None)
def _targeted(ctx: RunContext) -> dict:
    from lextune.pipeline.targeted import run_targeted

    if ctx.biencoder is None:
        raise ConfigError("targeted needs the trained bi-encoder (stage train_biencoder)")
    return run_targeted(ctx.config.targeted, model=ctx.biencoder, index_dir=ctx.dir("index"),
                        synth_dir=ctx.dir("synth"), chunks_dir=ctx.dir("ingest"), train_file=ctx.dir("mine") / "train.jsonl",
                        out_dir=ctx.dir("targeted"), train_config=biencoder_config(ctx),
                        progress=lambda m: ctx.say("targeted", m))
