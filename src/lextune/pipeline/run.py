"""``lextune run``: every stage in order, each cached by the hashes of its inputs and config.

A stage's output lives in ``run_dir/<stage>/`` and its record in ``run_dir/<stage>.stage.json`` (key,
summary, seconds). A stage whose key (its config + its upstream stages' keys, and for ingest the input
files' hashes) matches its record is skipped. Stages resume inside themselves after a crash (mining
keeps a partial file, training its checkpoints, encoding the embedding cache). ``manifest.json`` lists
every stage, key, artifact and the final comparison.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lextune.artifacts import file_sha256, make_meta, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError
from lextune.pipeline.config import _PATHS, STAGES, RunConfig

log = logging.getLogger(__name__)

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


def _inputs_hash(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        path = Path(p)
        files = sorted(x for x in path.rglob("*") if x.is_file()) if path.is_dir() else [path]
        if not files or not all(f.exists() for f in files):
            raise ConfigError(f"input {p} does not exist")
        for f in files:
            h.update(str(f).encode())
            h.update(file_sha256(f).encode())
    return h.hexdigest()


def _upstream(stage: str, cfg: RunConfig) -> list[str]:
    return {"ingest": [], "synth": ["ingest"], "index": ["ingest"], "mine": ["synth", "index"],
            "train_biencoder": ["mine", "synth"],
            "train_reranker": ["mine"] + (["train_biencoder"] if cfg.reranker_init == "biencoder" else []),
            "eval": ["index", "synth", "train_biencoder", "train_reranker"],
            "targeted": ["synth", "index", "mine", "train_biencoder"]}[stage]


def _stage_config(cfg: RunConfig, stage: str) -> dict:
    return {"ingest": lambda: {"ingest": cfg.ingest.model_dump(mode="json"), "inputs": sorted(cfg.inputs)},
            "synth": lambda: cfg.synth.model_dump(mode="json"),
            "index": lambda: {"bm25": cfg.bm25.model_dump(mode="json"), "model": cfg.base_model,
                              "type": cfg.dense_index_type, **({} if cfg.dense_index else {"dense": False})},
            "mine": lambda: cfg.mine.model_dump(mode="json"),
            "train_biencoder": lambda: {"base": cfg.base_model, **(cfg.train_biencoder or {})},
            "train_reranker": lambda: {"base": cfg.base_model, **(cfg.train_reranker or {}),
                                       **({"init": "biencoder"} if cfg.reranker_init == "biencoder" else {})},
            "eval": lambda: {**cfg.eval.model_dump(mode="json"),
                             **({"validation": cfg.validation.model_dump()} if cfg.validation else {})},
            "targeted": lambda: cfg.targeted.model_dump(mode="json") if cfg.targeted else None}[stage]()


def stage_key(ctx: RunContext, stage: str) -> str:
    h = hashlib.sha256()
    h.update(stage.encode())
    h.update(json.dumps(_stage_config(ctx.config, stage), sort_keys=True, ensure_ascii=False).encode())
    if stage == "ingest":
        h.update(_inputs_hash(ctx.config.inputs).encode())
    if stage == "synth" and ctx.config.synth.precedents:  # court decisions are inputs of synth
        h.update(_inputs_hash(ctx.config.synth.precedents).encode())
    if stage == "eval" and ctx.config.validation:  # the user's labelled questions are inputs of eval
        h.update(_inputs_hash([ctx.config.validation.path]).encode())
    for up in _upstream(stage, ctx.config):
        h.update(f"{up}={ctx.keys.get(up, 'off')}".encode())
    return h.hexdigest()


# -- the stages -------------------------------------------------------------------------------------
def _ingest(ctx: RunContext) -> dict:
    from lextune.ingest import ingest

    return ingest(ctx.config.inputs, ctx.dir("ingest"), ctx.config.ingest).to_dict()


def _synth(ctx: RunContext) -> dict:
    from lextune.synth import synth

    return synth(ctx.dir("ingest"), ctx.dir("synth"), ctx.config.synth).to_dict()


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
    from lextune.train.biencoder import BiEncoderTrainConfig

    values = {**(ctx.config.train_biencoder or {}), "base_model": ctx.config.base_model,
              "train_file": str(ctx.dir("mine") / "train.jsonl"), "corpus": str(ctx.dir("index")),
              "output_dir": str(ctx.dir("train_biencoder") / "model")}
    if "eval" in values and values["eval"] and not values["eval"].get("data"):
        values["eval"] = {**values["eval"], "data": str(ctx.dir("synth"))}
    return BiEncoderTrainConfig.model_validate({**values, **overrides})


def _train_biencoder(ctx: RunContext) -> dict:
    from lextune.train.biencoder import train_biencoder

    cfg = biencoder_config(ctx)
    s = train_biencoder(cfg, progress=lambda m: ctx.say("train_biencoder", m))
    return {k: v for k, v in s.items() if k != "loss_history"}


def _train_reranker(ctx: RunContext) -> dict:
    from lextune.train.reranker import RerankerTrainConfig, train_reranker

    base = ctx.config.base_model
    if ctx.config.reranker_init == "biencoder":
        if ctx.biencoder is None:
            raise ConfigError("reranker_init: biencoder, but the run has no trained bi-encoder (stage train_biencoder)")
        base = str(ctx.biencoder)
    cfg = RerankerTrainConfig.model_validate({**(ctx.config.train_reranker or {}), "base_model": base,
                                              "train_file": str(ctx.dir("mine") / "train.jsonl"),
                                              "corpus": str(ctx.dir("index")),
                                              "output_dir": str(ctx.dir("train_reranker") / "model")})
    return train_reranker(cfg, progress=lambda m: ctx.say("train_reranker", m))


def _eval(ctx: RunContext) -> dict:
    from lextune.pipeline.compare import compare

    return compare(ctx)


def _targeted(ctx: RunContext) -> dict:
    from lextune.pipeline.targeted import run_targeted

    if ctx.biencoder is None:
        raise ConfigError("targeted needs the trained bi-encoder (stage train_biencoder)")
    return run_targeted(ctx.config.targeted, model=ctx.biencoder, index_dir=ctx.dir("index"),
                        synth_dir=ctx.dir("synth"), chunks_dir=ctx.dir("ingest"), train_file=ctx.dir("mine") / "train.jsonl",
                        out_dir=ctx.dir("targeted"), train_config=biencoder_config(ctx),
                        progress=lambda m: ctx.say("targeted", m))


RUNNERS: dict[str, Callable[[RunContext], dict]] = {
    "ingest": _ingest, "synth": _synth, "index": _index, "mine": _mine, "train_biencoder": _train_biencoder,
    "train_reranker": _train_reranker, "eval": _eval, "targeted": _targeted,
}


def _enabled(cfg: RunConfig, stage: str) -> bool:
    return {"train_biencoder": cfg.train_biencoder is not None, "train_reranker": cfg.train_reranker is not None,
            "targeted": cfg.targeted is not None}.get(stage, True)


@dataclass
class RunResult:
    run_dir: Path
    stages: dict[str, dict]  # stage -> {status: ran|cached|off|skipped, key, seconds, summary}
    comparison: dict | None


def _layer_cache(config: RunConfig):
    """The run's shared cache of the bi-encoder's frozen bottom layers (``lextune.models.prefix_cache``)."""
    from lextune.models.prefix_cache import recipe_cache
    from lextune.train.biencoder import BiEncoderTrainConfig

    if config.train_biencoder is None:
        return recipe_cache(None, None, config.layer_cache_gb)
    train = BiEncoderTrainConfig.model_validate({**config.train_biencoder, **_PATHS})  # the recipe filled in
    return recipe_cache(train.train_layers, train.lora, config.layer_cache_gb)


def _run_stages(ctx: RunContext, stages: dict[str, dict], forced: int, last: int) -> None:
    config, root = ctx.config, ctx.root
    for i, stage in enumerate(STAGES):
        if i > last:
            stages[stage] = {"status": "not run (--until)"}
            continue
        if not _enabled(config, stage):
            stages[stage] = {"status": "off"}
            continue
        key = stage_key(ctx, stage)
        record_path = root / f"{stage}.stage.json"
        record = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
        if i < forced and record and record.get("key") == key and ctx.dir(stage).exists():
            ctx.keys[stage] = key
            ctx.summaries[stage] = record.get("summary", {})
            stages[stage] = {"status": "cached", "key": key, "seconds": record.get("seconds"),
                             "summary": record.get("summary")}
            ctx.say(stage, "unchanged: reused")
            continue
        ctx.say(stage, "running")
        t = time.perf_counter()
        summary = RUNNERS[stage](ctx)
        seconds = time.perf_counter() - t
        summary = json.loads(json.dumps(summary, default=str))
        write_json_atomic(record_path, {"stage": stage, "key": key, "seconds": seconds, "summary": summary})
        ctx.keys[stage] = key
        ctx.summaries[stage] = summary
        stages[stage] = {"status": "ran", "key": key, "seconds": seconds, "summary": summary}
        ctx.say(stage, f"done in {seconds:.0f} s")


def run_pipeline(config: RunConfig, *, from_stage: str | None = None, until: str | None = None,
                 progress: Progress | None = None) -> RunResult:
    """Run (or reuse) every stage; ``from_stage`` forces that stage and the later ones to run again,
    ``until`` stops after that stage."""
    for name in (from_stage, until):
        if name is not None and name not in STAGES:
            raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    root = Path(config.run_dir)
    root.mkdir(parents=True, exist_ok=True)
    save_config(config, root / "pipeline.yaml")
    ctx = RunContext(config, root, progress=progress)
    forced = STAGES.index(from_stage) if from_stage else len(STAGES)
    last = STAGES.index(until) if until else len(STAGES) - 1
    stages: dict[str, dict] = {}
    with _layer_cache(config) as cache:
        _run_stages(ctx, stages, forced, last)
    if cache is not None:
        ctx.say("run", "layer cache: {hits} texts reused the frozen bottom layers' outputs, {misses} computed them"
                .format(**cache.stats()))
    comparison = ctx.summaries.get("eval")
    artifacts = {s: sorted(str(p.relative_to(root)) for p in ctx.dir(s).rglob("*") if p.is_file())[:200]
                 for s in STAGES if ctx.dir(s).is_dir()}
    write_json_atomic(root / "manifest.json", make_meta(
        "run", config=config.model_dump(mode="json"), stages={s: {k: v for k, v in r.items() if k != "summary"}
                                                              for s, r in stages.items()},
        artifacts=artifacts, comparison=comparison, layer_cache=cache.stats() if cache is not None else None,
        targeted=ctx.summaries.get("targeted", {}).get("by_category") if ctx.summaries.get("targeted") else None))
    return RunResult(root, stages, comparison)


__all__ = ["RunContext", "RunResult", "run_pipeline", "stage_key", "biencoder_config", "_PATHS"]
