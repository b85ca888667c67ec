"""What a run recommends: candidate pipelines judged on validation queries, and never a system that this
validation shows below BM25.

Validation, in this order of preference: the user's own labelled questions (``validation:`` in the run
YAML), else held-out human-written precedent queries (synth generator ``precedents``), else the run's
synthetic validation split. Precedent and synthetic queries agree with real questions on whether tuning helped,
not on fusion (docs/benchmarks.md), so with them the fusion stays RRF and only tuned-versus-base and the
reranker are decided; the user's questions also choose among dense alone and weighted-sum hybrids.

The structure steps (law routing, cross-reference expansion, article pooling) are tried on BM25 and on the best
first stage; a variant becomes a candidate only when it beats its own first stage significantly there.

The recommendation is the best candidate whose nDCG@10 gain over BM25 passes a paired t-test (p <
``eval.recommend_max_p``), else BM25 alone. It is written as ``recommended.yaml`` in the run folder: a
pipeline that ``lextune eval -s rec=RUN/recommended.yaml``, ``lextune search --pipeline`` and
``lextune serve --run RUN`` build alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from lextune.artifacts import atomic_file
from lextune.index.fusion import FusionConfig
from lextune.index.pipeline import PipelineConfig, PipelineRerank, blend, build_pipeline
from lextune.index.structure import ExpandConfig, PoolConfig, RouteConfig
from lextune.runs import Run, drop_ignored

SOURCES = {"labelled": "labelled validation questions (the run's `validation:`)", "precedent": "held-out precedent queries (판시사항)",
           "synthetic": "held-out synthetic queries"}


@dataclass
class Validation:
    source: str  # labelled | precedent | synthetic
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    ignore: dict[str, set[str]]

    @property
    def robust(self) -> bool:
        """Fusion is not chosen on queries that do not judge it (precedent, synthetic)."""
        return self.source != "labelled"


def validation_set(ctx, taken: set[str]) -> Validation | None:
    """The queries that judge the candidates (``taken``: synthetic queries an eval dataset scores, never used)."""
    from lextune.pipeline.compare import stable_sample
    from lextune.runs import load_beir

    cfg = ctx.config
    if cfg.validation is not None:
        ds = load_beir(cfg.validation.path, queries_file=cfg.validation.queries_file, split=cfg.validation.split)
        queries = {q: t for q, t in ds.queries.items() if ds.qrels.get(q)}
        return Validation("labelled", queries, {q: ds.qrels[q] for q in queries}, ds.ignored())
    ds = load_beir(ctx.dir("synth"), split="dev")
    generators = ds.generators()
    judged = [q for q in ds.queries if ds.qrels.get(q) and q not in taken]
    precedent = [q for q in judged if generators.get(q) == "precedents"]
    source, pool = ("precedent", precedent) if precedent else ("synthetic", judged)
    qids = stable_sample(pool, cfg.eval.weight_queries, None if precedent else generators)
    if not qids:
        return None
    queries = {q: ds.queries[q] for q in sorted(qids)}
    return Validation(source, queries, {q: ds.qrels[q] for q in queries}, ds.ignored())


def model_specs(ctx) -> dict[str, str]:
    """base (and tuned, when trained) model specs; a tuned model by its absolute path, so that
    recommended.yaml loads from anywhere."""
    return {"base": ctx.config.base_model, **({"tuned": str(Path(ctx.biencoder).resolve())} if ctx.biencoder else {})}


def run_systems(ctx) -> dict[str, PipelineConfig]:
    """The run's table without the reranker: BM25, then per model (base, tuned) dense alone and the RRF hybrid."""
    dense = "dense" if ctx.config.dense_index_type == "flat" else {"name": "dense",
                                                                   "index_type": ctx.config.dense_index_type}
    fusion = FusionConfig(method="rrf", rrf_k=ctx.config.eval.rrf_k)
    systems = {"bm25": PipelineConfig(retrievers=["bm25"])}
    for name, spec in model_specs(ctx).items():
        systems[f"dense-{name}"] = PipelineConfig(retrievers=[dense], dense_model=spec)
        systems[f"hybrid-{name}"] = PipelineConfig(retrievers=["bm25", dense], fusion=fusion, depth=100,
                                                   dense_model=spec)
    return systems


def first_stages(ctx, robust: bool) -> dict[str, PipelineConfig]:
    """The candidates without a reranker: the run's systems (without dense alone when the fusion is not
    chosen) and, when it is, weighted-sum hybrids over a small grid of dense weights."""
    out = {n: c for n, c in run_systems(ctx).items() if not (robust and n.startswith("dense-"))}
    if not robust:
        for name in model_specs(ctx):
            hybrid = out[f"hybrid-{name}"]
            for w in ctx.config.eval.wsum_weights:
                out[f"wsum{w:g}-{name}"] = hybrid.model_copy(update={"fusion": FusionConfig(
                    method="wsum", weights=[round(1 - w, 6), w], norm="min-max")})
    return out


def recommend(ctx, index, resources) -> tuple[dict, dict[str, PipelineConfig]]:
    """Judge the candidates on the validation queries, choose the reranker's blend weight there, write
    ``recommended.yaml``; returns the evidence and the best first stage with the reranker (name -> pipeline,
    empty without a reranker), the row the run's tables add."""
    from lextune.pipeline.compare import blend_gain_p, choose_rerank_weight, dataset_sample

    cfg = ctx.config.eval
    taken: set[str] = set()
    if any(d.path is None for d in cfg.datasets):
        from lextune.runs import load_beir

        ds = load_beir(ctx.dir("synth"), split="dev")
        judged = [q for q in ds.queries if ds.qrels.get(q)]
        taken = {q for d in cfg.datasets if d.path is None for q in dataset_sample(d, ds, judged)}
    val = validation_set(ctx, taken)
    if val is None:
        ctx.say("eval", "no validation queries: recommending BM25 alone")
        _write(ctx, PipelineConfig(retrievers=["bm25"]))
        return {"recommended": "bm25", "source": None, "queries": 0, "candidates": {}}, {}
    ctx.say("eval", f"judging the candidates on {len(val.queries)} {SOURCES[val.source]}")
    configs = first_stages(ctx, val.robust)
    runs = {n: drop_ignored(build_pipeline(index, c, resources).search(val.queries, 100), val.ignore)
            for n, c in configs.items()}
    scores = _scores(val, runs)
    evidence: dict = {"source": val.source, "queries": len(val.queries), "robust_fusion": val.robust}
    evidence["structure_steps"] = with_structure_steps(ctx, index, resources, val, configs, runs, scores)
    evidence["step_max_p"] = cfg.weight_max_p
    scores = _scores(val, runs)
    reranked: dict[str, PipelineConfig] = {}
    if ctx.reranker is not None:
        best_first = max((n for n in runs if n != "bm25"), key=lambda n: scores[n]["ndcg@10"])
        first = runs[best_first]
        rr = PipelineRerank(model=str(Path(ctx.reranker).resolve()), k=cfg.k_rerank, max_length=cfg.rerank_max_length)
        weight = cfg.rerank_weight
        rerun = None
        pair_scores: dict[tuple[str, str], float] = {}
        if weight != 0:
            rerun = drop_ignored(resources.reranker(rr).rerank(val.queries, first, index.texts, cfg.k_rerank,
                                                               cache=pair_scores), val.ignore)
        if weight == "auto":
            best, curve = choose_rerank_weight(val.qrels, first, rerun, cfg.k_rerank)
            p = blend_gain_p(val.qrels, first, rerun, best, cfg.k_rerank) if best > 0 else None
            weight = best if p is not None and p < cfg.weight_max_p else 0.0
            evidence["rerank_weight"] = {"weight": weight, "best_weight": best, "p_value": p, "max_p": cfg.weight_max_p,
                                         "queries": len(val.queries), "first_stage": best_first,
                                         "ndcg@10": {str(w): v for w, v in curve.items()}}
            ctx.say("eval", f"rerank weight {weight} over {best_first} (validation nDCG@10 {curve[0.0]:.3f} without "
                            f"the reranker, {curve[best]:.3f} at its best weight {best}"
                    + (f", paired t-test p = {p:.3f}" if p is not None else "")
                    + (")" if weight == best else f": not significant at p < {cfg.weight_max_p}, so 0)"))
        weight = 1.0 if weight is None else weight
        # At a weight above 0 every first stage is tried with the reranker too; the pairs its top k shares with
        # another's are scored once. At 0 the reranker changes nothing: one row says so.
        for n in [best_first] if weight == 0 else list(configs):
            name = f"{n}+rerank"
            reranked[name] = configs[n].model_copy(update={"rerank": rr.model_copy(update={"weight": weight})})
            configs[name] = reranked[name]
            if weight == 0:
                runs[name] = runs[n]
                continue
            rr_run = rerun if n == best_first else drop_ignored(resources.reranker(rr).rerank(
                val.queries, runs[n], index.texts, cfg.k_rerank, cache=pair_scores), val.ignore)
            runs[name] = blend(runs[n], rr_run, weight, cfg.k_rerank) if weight < 1 else rr_run
        scores = _scores(val, runs)
        reranked = {f"{best_first}+rerank": reranked[f"{best_first}+rerank"]}  # the table's reranker row
    eligible = [n for n, s in scores.items() if n != "bm25" and s["ndcg@10"] > scores["bm25"]["ndcg@10"]
                and s["p_vs_bm25"] is not None and s["p_vs_bm25"] < cfg.recommend_max_p]
    chosen = max(eligible, key=lambda n: (scores[n]["ndcg@10"], -_cost(configs[n]))) if eligible else "bm25"
    _write(ctx, configs[chosen])
    evidence |= {"recommended": chosen, "max_p": cfg.recommend_max_p, "candidates": scores,
                 "pipelines": {n: c.model_dump(mode="json") for n, c in configs.items()}}
    ctx.say("eval", f"recommended: {chosen} (validation nDCG@10 {scores[chosen]['ndcg@10']:.3f}; BM25 "
                    f"{scores['bm25']['ndcg@10']:.3f})" + ("" if eligible else
                    f": no candidate beat BM25 significantly (p < {cfg.recommend_max_p}), so BM25 alone"))
    return evidence, reranked


STEP_CONFIGS = {"route": RouteConfig, "expand": ExpandConfig, "pool": PoolConfig}


def with_structure_steps(ctx, index, resources, val: Validation, configs: dict[str, PipelineConfig],
                         runs: dict[str, Run], scores: dict[str, dict]) -> dict:
    """Try the structure steps (``eval.structure_steps``, at their defaults) on BM25 and on the best first stage,
    each alone and all together; a variant joins the candidates (``configs`` and ``runs``, in place) only when
    its validation nDCG@10 gain over the same first stage passes a paired t-test (p < ``eval.weight_max_p``).
    Returns the evidence: each variant's nDCG@10, its first stage's, p and whether it was kept."""
    steps = [s for s in ctx.config.eval.structure_steps if s != "expand" or index.has_links]
    if not steps:
        return {}
    best = max((n for n in configs if n != "bm25"), key=lambda n: scores[n]["ndcg@10"], default="bm25")
    variants = {f"{n}+{s}": (n, [s]) for n in dict.fromkeys(["bm25", best]) for s in steps}
    if len(steps) > 1:
        variants |= {f"{n}+structure": (n, steps) for n in dict.fromkeys(["bm25", best])}
    from lextune.pipeline.compare import paired_gain

    evidence = {}
    for name, (first, names) in variants.items():
        config = configs[first].model_copy(update={s: STEP_CONFIGS[s]() for s in names})
        run = drop_ignored(build_pipeline(index, config, resources).search(val.queries, 100), val.ignore)
        ndcg, p = paired_gain(val.qrels, runs[first], run)
        kept = ndcg > scores[first]["ndcg@10"] and p is not None and p < ctx.config.eval.weight_max_p
        evidence[name] = {"first_stage": first, "steps": names, "ndcg@10": ndcg,
                          "first_stage_ndcg@10": scores[first]["ndcg@10"], "p_value": p, "kept": kept}
        if kept:
            configs[name], runs[name] = config, run
    kept = [n for n, e in evidence.items() if e["kept"]]
    ctx.say("eval", f"structure steps on the validation queries: kept {', '.join(kept)}" if kept else
            "structure steps on the validation queries: none beat its first stage significantly "
            f"(p < {ctx.config.eval.weight_max_p})")
    return evidence


def _scores(val: Validation, runs: dict[str, Run]) -> dict[str, dict]:
    """nDCG@10 and Hit@1 per candidate, with the paired t-test p-value against BM25 on nDCG@10."""
    from lextune.eval.evaluate import EvalConfig, evaluate

    names = ["bm25", *(n for n in runs if n != "bm25")]
    result = evaluate(val.qrels, {n: runs[n] for n in names},
                      EvalConfig(families=["ndcg", "hit_rate"], k_values=[1, 10], stat_test="student"))
    p = result.p_vs_first("ndcg@10")
    return {n: {"ndcg@10": result.overall[n]["ndcg@10"], "hit_rate@1": result.overall[n]["hit_rate@1"],
                "p_vs_bm25": None if n == "bm25" or p.get(n) is None or math.isnan(p[n]) else p[n]} for n in names}


def _cost(config: PipelineConfig) -> int:
    """Ties go to the cheaper pipeline: fewer retrievers and steps, no reranker."""
    steps = sum(getattr(config, s) is not None for s in STEP_CONFIGS)
    return len(config.retrievers) + steps + (2 if config.rerank and config.rerank.weight > 0 else 0)


def _write(ctx, config: PipelineConfig) -> None:
    import yaml

    text = ("# What this run recommends (lextune.pipeline.recommend): serve it with `lextune serve --run "
            f"{ctx.root}`,\n# measure it with `lextune eval -i {ctx.dir('index')} -s rec={ctx.root / 'recommended.yaml'}`.\n")
    text += yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), allow_unicode=True, sort_keys=False)
    with atomic_file(ctx.root / "recommended.yaml") as tmp:
        tmp.write_text(text, encoding="utf-8")
