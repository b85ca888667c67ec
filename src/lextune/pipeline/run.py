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
from dataclasses import dataclass
from pathlib import Path

from lextune.artifacts import file_sha256, make_meta, write_json_atomic
from lextune.config import save_config
from lextune.errors import ConfigError
from lextune.pipeline.config import RunConfig
from lextune.pipeline.stages import STAGES, Progress, RunContext, biencoder_config

log = logging.getLogger(__name__)


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


def stage_key(ctx: RunContext, stage: str) -> str:
    """The stage's cache key: its config, the contents of its input files and its upstream stages' keys."""
    spec = STAGES[stage]
    h = hashlib.sha256()
    h.update(stage.encode())
    h.update(json.dumps(spec.config(ctx.config), sort_keys=True, ensure_ascii=False).encode())
    if inputs := spec.inputs(ctx.config):
        h.update(_inputs_hash(inputs).encode())
    for up in spec.upstream(ctx.config):
        h.update(f"{up}={ctx.keys.get(up, 'off')}".encode())
    return h.hexdigest()


@dataclass
class RunResult:
    run_dir: Path
    stages: dict[str, dict]  # stage -> {status: ran|cached|off|skipped, key, seconds, summary}
    comparison: dict | None


def _layer_cache(config: RunConfig):
    """The run's shared cache of the bi-encoder's frozen bottom layers (``lextune.models.prefix_cache``)."""
    from lextune.models.prefix_cache import recipe_cache

    if config.train_biencoder is None:
        return recipe_cache(None, None, config.layer_cache_gb)
    train = config.train_biencoder  # the recipe filled in
    return recipe_cache(train.train_layers, train.lora, config.layer_cache_gb)


def _run_stages(ctx: RunContext, stages: dict[str, dict], forced: int, last: int) -> None:
    config, root = ctx.config, ctx.root
    for i, (stage, spec) in enumerate(STAGES.items()):
        if i > last:
            stages[stage] = {"status": "not run (--until)"}
            continue
        if not spec.enabled(config):
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
        summary = spec.run(ctx)
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
    order = list(STAGES)
    forced = order.index(from_stage) if from_stage else len(order)
    last = order.index(until) if until else len(order) - 1
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


__all__ = ["RunContext", "RunResult", "run_pipeline", "stage_key", "biencoder_config"]
