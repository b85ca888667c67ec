"""The eval stage of ``lextune run``: base versus tuned pipelines on every configured dataset.

Systems: BM25, base dense, base hybrid (RRF), tuned dense, tuned hybrid, and tuned hybrid + the trained
reranker over its top ``k_rerank``, each evaluated by :func:`lextune.eval.run_evaluation` (metrics.json,
failure notebooks, report.html per dataset and query file), and one comparison table for the run.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from lextune.artifacts import write_json_atomic
from lextune.eval.evaluate import EvalConfig
from lextune.index.fusion import FusionConfig
from lextune.index.pipeline import PipelineConfig, PipelineRerank, blend
from lextune.runs import Run, drop_ignored

HEADLINE = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


WEIGHT_GRID = [round(0.1 * i, 1) for i in range(11)]


def choose_rerank_weight(qrels, first: Run, reranked: Run, k: int, grid: list[float] | None = None) -> tuple[float, dict]:
    """The blend weight with the best nDCG@10 on (synthetic validation) ``qrels``; ties go to the smaller
    weight, so a reranker that adds nothing gets 0. Returns the weight and nDCG@10 per weight tried."""
    from lextune.eval.metrics import evaluate_run

    curve = {w: evaluate_run(qrels, blend(first, reranked, w, k), ["ndcg@10"])["ndcg@10"] for w in (grid or WEIGHT_GRID)}
    best = max(curve.values())
    return min(w for w, v in curve.items() if v >= best - 1e-12), curve


def blend_gain_p(qrels, first: Run, reranked: Run, weight: float, k: int) -> float:
    """p-value of evaluation's paired test (Student t over per-query nDCG@10): the blend at ``weight``
    against the first stage alone. A small validation set makes a best weight look better than it is;
    this says how much of its gain is noise (1.0 when the test is undefined)."""
    import math

    from lextune.eval.evaluate import EvalConfig, evaluate

    result = evaluate(qrels, {"first": first, "blend": blend(first, reranked, weight, k)},
                      EvalConfig(families=["ndcg"], k_values=[10], stat_test="student"))
    p = result.p_value("blend", "first", "ndcg@10")
    return 1.0 if math.isnan(p) else p


def _sample(qids: list[str], n: int | None, groups: dict[str, str] | None = None) -> list[str]:
    """A stable sample: the first ``n`` query ids in hash order (all of them, hash-ordered, for None).
    With ``groups`` (query id -> generator) the groups take turns, each in hash order, until ``n``."""
    ordered = sorted(qids, key=lambda q: hashlib.sha1(q.encode()).hexdigest())
    if n is None or not groups:
        return ordered[:n]
    by_group: dict[str, list[str]] = {}
    for q in ordered:
        by_group.setdefault(groups.get(q, ""), []).append(q)
    turns = [by_group[g] for g in sorted(by_group)]
    out = [qs[i] for i in range(max(map(len, turns))) for qs in turns if i < len(qs)]
    return out[:n]


def _dataset_sample(ds_cfg, ds, qids: list[str]) -> list[str]:
    """The queries of ``ds`` that ``ds_cfg`` evaluates (all, or its stable, maybe stratified, sample)."""
    return _sample(qids, ds_cfg.max_queries, ds.generators() if ds_cfg.stratify else None)


def by_generator(result, generators: dict[str, str]) -> dict:
    """Headline means per synthetic generator (title, ict, refs, llm ...) from per-query scores."""
    groups: dict[str, list[str]] = {}
    for q in result.queries:
        if q in generators:
            groups.setdefault(generators[q], []).append(q)
    return {g: {"queries": len(qs), "systems": {
        s: {m: sum(result.per_query[s][m][q] for q in qs) / len(qs) for m in HEADLINE if m in result.per_query[s]}
        for s in result.systems}} for g, qs in sorted(groups.items())}


def _auto_weight(ctx, index, systems: dict[str, PipelineConfig], resources) -> tuple[float, dict]:
    """Choose the blend weight on the run's synthetic validation split (held out from training by chunk)."""
    from lextune.index.pipeline import build_pipeline
    from lextune.runs import load_beir

    cfg = ctx.config.eval
    ds = load_beir(ctx.dir("synth"), split="dev")
    # Queries an eval dataset of this run's own synthetic split will score are never used to choose.
    judged = [q for q in ds.queries if ds.qrels.get(q)]
    taken = {q for ds_cfg in cfg.datasets if ds_cfg.path is None for q in _dataset_sample(ds_cfg, ds, judged)}
    qids = [q for q in judged if q not in taken]
    queries = {q: ds.queries[q] for q in sorted(_sample(qids, cfg.weight_queries, ds.generators()))}
    if not queries:
        ctx.say("eval", "no synthetic validation queries left outside the evaluated ones: reranker weight 0")
        return 0.0, {"weight": 0.0, "queries": 0, "ndcg@10": {}}
    reranked_name = next(n for n, c in systems.items() if c.rerank is not None)
    first_cfg = systems[reranked_name]
    first = build_pipeline(index, first_cfg.model_copy(update={"rerank": None}), resources).search(queries, 100)
    ctx.say("eval", f"choosing the rerank weight on {len(queries)} synthetic validation queries")
    reranked = resources.reranker(first_cfg.rerank).rerank(queries, first, index.texts, cfg.k_rerank)
    ignore = ds.ignored()
    qrels, first, reranked = {q: ds.qrels[q] for q in queries}, drop_ignored(first, ignore), drop_ignored(reranked, ignore)
    best, curve = choose_rerank_weight(qrels, first, reranked, cfg.k_rerank)
    p = blend_gain_p(qrels, first, reranked, best, cfg.k_rerank) if best > 0 else None
    weight = best if p is not None and p < cfg.weight_max_p else 0.0
    ctx.say("eval", f"rerank weight {weight} (validation nDCG@10 {curve[0.0]:.3f} without the reranker, "
                    f"{curve[best]:.3f} at its best weight {best}" + (f", paired t-test p = {p:.3f}" if p is not None else "")
            + (")" if weight == best else f": not significant at p < {cfg.weight_max_p}, so 0)"))
    return weight, {"weight": weight, "best_weight": best, "p_value": p, "max_p": cfg.weight_max_p,
                    "queries": len(queries), "ndcg@10": {str(w): v for w, v in curve.items()}}


def run_systems(ctx, weight: float | None = None) -> dict[str, PipelineConfig]:
    """The run's systems as pipelines: BM25, base dense and hybrid, tuned dense and hybrid, and the best hybrid
    with the trained reranker at blend ``weight`` (None: the reranker's order)."""
    cfg = ctx.config.eval
    dense = "dense" if ctx.config.dense_index_type == "flat" else {"name": "dense",
                                                                   "index_type": ctx.config.dense_index_type}
    fusion = FusionConfig(method="rrf", rrf_k=cfg.rrf_k)
    systems = {"bm25": PipelineConfig(retrievers=["bm25"])}
    models = {"base": ctx.config.base_model, **({"tuned": str(ctx.biencoder)} if ctx.biencoder else {})}
    for name, spec in models.items():
        systems[f"dense-{name}"] = PipelineConfig(retrievers=[dense], dense_model=spec)
        systems[f"hybrid-{name}"] = PipelineConfig(retrievers=["bm25", dense], fusion=fusion, depth=100,
                                                   dense_model=spec)
    if ctx.reranker:
        first = "hybrid-tuned" if "tuned" in models else "hybrid-base"
        systems[f"{first}+rerank"] = systems[first].model_copy(update={"rerank": PipelineRerank(
            model=str(ctx.reranker), k=cfg.k_rerank, max_length=cfg.rerank_max_length,
            weight=1.0 if weight is None else weight)})
    return systems


def _dataset_index(ctx, ds_cfg, ds):
    """The index over the dataset's own corpus (``corpus: own``), built once into the eval folder."""
    from lextune.index import IndexBuildConfig, LexIndex, build_index, docs_from_beir
    from lextune.index.dense import DenseConfig

    folder = ctx.dir("eval") / ds_cfg.name / "index"
    if (folder / "meta.json").is_file():
        return LexIndex.load(folder)
    docs = docs_from_beir(ds.corpus)
    cfg = IndexBuildConfig(bm25=ctx.config.bm25, dense=DenseConfig(model=ctx.config.base_model,
                                                                   index_type=ctx.config.dense_index_type))
    ctx.say("eval", f"{ds_cfg.name}: indexing its {len(docs)} passages (BM25 + base dense)")
    return build_index(docs, folder, cfg, source={"beir": str(ds.path)})


def compare(ctx) -> dict:
    """Evaluate every system on every dataset; write eval/comparison.{json,md}; return the comparison."""
    from lextune.eval.run import System, run_evaluation
    from lextune.index import LexIndex
    from lextune.index.pipeline import PipelineResources, build_pipeline
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    cfg = ctx.config.eval
    base_enc = BiEncoder(ctx.config.base_model)
    tuned_enc = BiEncoder(str(ctx.biencoder)) if ctx.biencoder else None
    # One set of models, encoded corpora and first-stage runs for every system, the weight choice and every
    # dataset (an index built without a dense part is encoded with the base model once, cached).
    resources = PipelineResources(encoders=[e for e in (base_enc, tuned_enc) if e is not None],
                                  say=lambda m: ctx.say("eval", m))
    table: dict = {"datasets": {}}
    run_index = functools.cache(lambda: LexIndex.load(ctx.dir("index")))
    weight = cfg.rerank_weight
    if ctx.reranker and weight == "auto":
        weight, table["rerank_weight"] = _auto_weight(ctx, run_index(), run_systems(ctx), resources)
    systems = run_systems(ctx, weight)
    for ds_cfg in cfg.datasets:
        path = Path(ds_cfg.path) if ds_cfg.path else ctx.dir("synth")
        index = None
        for qfile in ds_cfg.queries_files:
            ds = load_beir(path, queries_file=qfile, split=ds_cfg.split)
            if index is None:
                index = run_index() if ds_cfg.corpus == "run" else _dataset_index(ctx, ds_cfg, ds)
                pipelines = {n: build_pipeline(index, c, resources) for n, c in systems.items()}
            queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
            if ds_cfg.max_queries and len(queries) > ds_cfg.max_queries:
                queries = {q: queries[q] for q in sorted(_dataset_sample(ds_cfg, ds, list(queries)))}
                ds.queries, ds.qrels = queries, {q: ds.qrels[q] for q in queries}
            for n, p in pipelines.items():
                if p.reranks:
                    ctx.say("eval", f"{ds_cfg.name}/{qfile}: {n} reranks the top {cfg.k_rerank} of {len(queries)} queries")
            runs = {n: p.search(queries, 100) for n, p in pipelines.items()}
            provenance = {"index": str(index.folder), "bm25": index.meta.get("config", {}).get("bm25"),
                          "base_model": base_enc.describe() | {"fingerprint": base_enc.fingerprint()},
                          "tuned_model": (tuned_enc.describe() | {"fingerprint": tuned_enc.fingerprint()})
                          if tuned_enc else None, "rerank_weight": weight}
            evaluated = [System(n, r, {"system": n, "pipeline": systems[n].model_dump(mode="json"), **provenance})
                         for n, r in runs.items()]
            out = ctx.dir("eval") / ds_cfg.name / Path(qfile).stem
            result = run_evaluation(ds, evaluated, out, config=EvalConfig(), queries_file=qfile, split=ds_cfg.split,
                                    report=cfg.report, map_encoder=tuned_enc or base_enc if cfg.report else None)
            table["datasets"][f"{ds_cfg.name}/{Path(qfile).stem}"] = {
                "queries": len(result.queries), "folder": str(out.relative_to(ctx.root)),
                "systems": {s: {m: result.overall[s][m] for m in HEADLINE if m in result.overall[s]}
                            for s in result.systems}}
            if groups := by_generator(result, ds.generators()):
                table["datasets"][f"{ds_cfg.name}/{Path(qfile).stem}"]["by_generator"] = groups
            ctx.say("eval", f"{ds_cfg.name}/{qfile}: " + ", ".join(
                f"{s} {result.overall[s]['ndcg@10']:.3f}" for s in result.systems))
    ctx.dir("eval").mkdir(parents=True, exist_ok=True)
    write_json_atomic(ctx.dir("eval") / "comparison.json", table)
    (ctx.dir("eval") / "comparison.md").write_text(comparison_markdown(table), encoding="utf-8")
    return table


def comparison_markdown(table: dict) -> str:
    lines = []
    for name, d in table["datasets"].items():
        lines += [f"### {name} ({d['queries']} queries)", "", "| system | " + " | ".join(HEADLINE) + " |",
                  "|---|" + "---:|" * len(HEADLINE)]
        for s, m in d["systems"].items():
            lines.append(f"| {s} | " + " | ".join(f"{m.get(x, float('nan')):.3f}" for x in HEADLINE) + " |")
        lines.append("")
        if groups := d.get("by_generator"):
            lines += [f"nDCG@10 by query generator ({name}):", "",
                      "| system | " + " | ".join(f"{g} ({gd['queries']})" for g, gd in groups.items()) + " |",
                      "|---|" + "---:|" * len(groups)]
            for s in d["systems"]:
                lines.append(f"| {s} | " + " | ".join(
                    f"{gd['systems'][s].get('ndcg@10', float('nan')):.3f}" for gd in groups.values()) + " |")
            lines.append("")
    if rw := table.get("rerank_weight"):
        curve = ", ".join(f"{w}: {v:.3f}" for w, v in rw["ndcg@10"].items())
        test = ""
        if rw.get("p_value") is not None:
            test = (f"; best weight {rw['best_weight']}, paired t-test against weight 0 p = {rw['p_value']:.3f}, "
                    + ("kept" if rw["weight"] == rw["best_weight"] else f"not below {rw['max_p']}, so 0"))
        lines += [f"Reranker blend weight {rw['weight']}, chosen on {rw['queries']} synthetic validation queries "
                  f"(nDCG@10 by weight: {curve}{test}).", ""]
    return "\n".join(lines)


def load_comparison(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "eval" / "comparison.json").read_text(encoding="utf-8"))
