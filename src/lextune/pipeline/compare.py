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

from lextune import markdown
from lextune.artifacts import write_json_atomic
from lextune.eval.evaluate import EvalConfig
from lextune.index.pipeline import PipelineConfig, blend
from lextune.progress import every
from lextune.runs import Run

HEADLINE = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


WEIGHT_GRID = [round(0.1 * i, 1) for i in range(11)]


def choose_rerank_weight(qrels, first: Run, reranked: Run, k: int, grid: list[float] | None = None) -> tuple[float, dict]:
    """The blend weight with the best nDCG@10 on (synthetic validation) ``qrels``; ties go to the smaller
    weight, so a reranker that adds nothing gets 0. Returns the weight and nDCG@10 per weight tried."""
    from lextune.eval.metrics import evaluate_run

    curve = {w: evaluate_run(qrels, blend(first, reranked, w, k), ["ndcg@10"])["ndcg@10"] for w in (grid or WEIGHT_GRID)}
    best = max(curve.values())
    return min(w for w, v in curve.items() if v >= best - 1e-12), curve


def paired_gain(qrels, first: Run, other: Run) -> tuple[float, float | None]:
    """nDCG@10 of ``other`` and the p-value of evaluation's paired test (Student t over per-query nDCG@10)
    against ``first`` (None when the test is undefined: identical scores)."""
    import math

    from lextune.eval.evaluate import EvalConfig, evaluate

    result = evaluate(qrels, {"first": first, "other": other},
                      EvalConfig(families=["ndcg"], k_values=[10], stat_test="student"))
    p = result.p_value("other", "first", "ndcg@10")
    return result.overall["other"]["ndcg@10"], None if math.isnan(p) else p


def blend_gain_p(qrels, first: Run, reranked: Run, weight: float, k: int) -> float:
    """p-value of the paired test of the blend at ``weight`` against the first stage alone. A small validation
    set makes a best weight look better than it is; this says how much of its gain is noise (1.0 when the test
    is undefined)."""
    p = paired_gain(qrels, first, blend(first, reranked, weight, k))[1]
    return 1.0 if p is None else p


def stable_sample(qids: list[str], n: int | None, groups: dict[str, str] | None = None) -> list[str]:
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


def dataset_sample(ds_cfg, ds, qids: list[str]) -> list[str]:
    """The queries of ``ds`` that ``ds_cfg`` evaluates (all, or its stable, maybe stratified, sample)."""
    return stable_sample(qids, ds_cfg.max_queries, ds.generators() if ds_cfg.stratify else None)


def by_generator(result, generators: dict[str, str]) -> dict:
    """Headline means per synthetic generator (title, ict, refs, llm ...) from per-query scores."""
    groups: dict[str, list[str]] = {}
    for q in result.queries:
        if q in generators:
            groups.setdefault(generators[q], []).append(q)
    return {g: {"queries": len(qs), "systems": {
        s: {m: sum(result.per_query[s][m][q] for q in qs) / len(qs) for m in HEADLINE if m in result.per_query[s]}
        for s in result.systems}} for g, qs in sorted(groups.items())}


def _dataset_index(ctx, ds_cfg, ds):
    """The index over the dataset's own corpus (``corpus: own``), built once into the eval folder."""
    from lextune.index import IndexBuildConfig, LexIndex, build_index
    from lextune.index.dense import DenseConfig
    from lextune.ingest.refs import beir_chunks, linked_docs

    folder = ctx.dir("eval") / ds_cfg.name / "index"
    if (folder / "meta.json").is_file():
        return LexIndex.load(folder)
    docs, links = linked_docs(beir_chunks(ds.corpus))
    cfg = IndexBuildConfig(bm25=ctx.config.bm25, dense=DenseConfig(model=ctx.config.base_model,
                                                                   index_type=ctx.config.dense_index_type))
    ctx.say("eval", f"{ds_cfg.name}: indexing its {len(docs)} passages (BM25 + base dense)")
    return build_index(docs, folder, cfg, source={"beir": str(ds.path)}, links=links)


def compare(ctx) -> dict:
    """Evaluate every system on every dataset; write eval/comparison.{json,md}; return the comparison."""
    from lextune.config import load_config
    from lextune.eval.run import System, run_evaluation
    from lextune.index import LexIndex
    from lextune.index.pipeline import PipelineResources, build_pipeline
    from lextune.models.biencoder import BiEncoder
    from lextune.pipeline.recommend import model_specs, recommend, run_systems
    from lextune.runs import load_beir

    cfg = ctx.config.eval
    specs = model_specs(ctx)
    base_enc = BiEncoder(specs["base"])
    tuned_enc = BiEncoder(specs["tuned"]) if "tuned" in specs else None
    # One set of models, encoded corpora and first-stage runs for every system, the weight choice and every
    # dataset (an index built without a dense part is encoded with the base model once, cached).
    resources = PipelineResources(encoders=[e for e in (base_enc, tuned_enc) if e is not None],
                                  say=lambda m: ctx.say("eval", m), progress=every(60, lambda m: ctx.say("eval", m)))
    table: dict = {"datasets": {}}
    run_index = functools.cache(lambda: LexIndex.load(ctx.dir("index")))
    evidence, reranked = recommend(ctx, run_index(), resources)
    table["recommendation"] = evidence
    if "rerank_weight" in evidence:
        table["rerank_weight"] = evidence["rerank_weight"] | {"source": evidence["source"]}
    weight = next(iter(reranked.values())).rerank.weight if reranked else None
    systems = {**run_systems(ctx), **reranked,
               "recommended": load_config(PipelineConfig, ctx.root / "recommended.yaml")}
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
                queries = {q: queries[q] for q in sorted(dataset_sample(ds_cfg, ds, list(queries)))}
                ds.queries, ds.qrels = queries, {q: ds.qrels[q] for q in queries}
            for n, p in pipelines.items():
                if p.reranks:
                    ctx.say("eval", f"{ds_cfg.name}/{qfile}: {n} reranks the top {cfg.k_rerank} of {len(queries)} queries")
            ran = {n: p.run(queries, 100) for n, p in pipelines.items()}
            provenance = {"index": str(index.folder), "bm25": index.meta.get("config", {}).get("bm25"),
                          "base_model": base_enc.describe() | {"fingerprint": base_enc.fingerprint()},
                          "tuned_model": (tuned_enc.describe() | {"fingerprint": tuned_enc.fingerprint()})
                          if tuned_enc else None, "rerank_weight": weight}
            evaluated = [System(n, r, {"system": n, "pipeline": systems[n].model_dump(mode="json"), **provenance},
                                trace.notes) for n, (r, trace) in ran.items()]
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
        lines += [f"### {name} ({d['queries']} queries)", "", *markdown.table(["system", *HEADLINE], [
            [s, *(f"{m.get(x, float('nan')):.3f}" for x in HEADLINE)] for s, m in d["systems"].items()]), ""]
        if groups := d.get("by_generator"):
            lines += [f"nDCG@10 by query generator ({name}):", "", *markdown.table(
                ["system", *(f"{g} ({gd['queries']})" for g, gd in groups.items())],
                [[s, *(f"{gd['systems'][s].get('ndcg@10', float('nan')):.3f}" for gd in groups.values())]
                 for s in d["systems"]]), ""]
    if rw := table.get("rerank_weight"):
        curve = ", ".join(f"{w}: {v:.3f}" for w, v in rw["ndcg@10"].items())
        test = ""
        if rw.get("p_value") is not None:
            test = (f"; best weight {rw['best_weight']}, paired t-test against weight 0 p = {rw['p_value']:.3f}, "
                    + ("kept" if rw["weight"] == rw["best_weight"] else f"not below {rw['max_p']}, so 0"))
        from lextune.pipeline.recommend import SOURCES

        lines += [f"Reranker blend weight {rw['weight']} over {rw.get('first_stage', 'the first stage')}, chosen on "
                  f"{rw['queries']} {SOURCES.get(rw.get('source'), 'validation queries')} "
                  f"(nDCG@10 by weight: {curve}{test}).", ""]
    if rec := table.get("recommendation"):
        lines += recommendation_markdown(rec)
    return "\n".join(lines)


def recommendation_markdown(rec: dict) -> list[str]:
    from lextune.pipeline.recommend import SOURCES

    if not rec.get("candidates"):
        return ["Recommended: BM25 alone (no validation queries to judge the other systems on).", ""]
    lines = [f"Recommended (recommended.yaml): **{rec['recommended']}**, judged on {rec['queries']} "
             f"{SOURCES[rec['source']]}; a system other than BM25 needs a significant nDCG@10 gain over BM25 "
             f"(paired t-test, p < {rec['max_p']})" + ("; the fusion stays RRF on such queries" if
                                                      rec.get("robust_fusion") else "") + ".", ""]
    rows = [[n, f"{c['ndcg@10']:.3f}", f"{c['hit_rate@1']:.3f}", "" if c["p_vs_bm25"] is None else f"{c['p_vs_bm25']:.3g}"]
            for n, c in rec["candidates"].items()]
    lines = [*lines, *markdown.table(["candidate", "nDCG@10", "Hit@1", "p vs BM25"], rows), ""]
    if steps := rec.get("structure_steps"):
        lines += [f"Structure steps (kept as candidates when their gain over the same first stage is significant, "
                  f"p < {rec.get('step_max_p', 0.05)}):", ""]
        lines += markdown.table(["variant", "nDCG@10", "first stage", "p", "kept"], [
            [n, f"{e['ndcg@10']:.3f}", f"{e['first_stage_ndcg@10']:.3f}",
             "" if e["p_value"] is None else f"{e['p_value']:.3g}", "yes" if e["kept"] else "no"]
            for n, e in steps.items()]) + [""]
    return lines


def load_comparison(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "eval" / "comparison.json").read_text(encoding="utf-8"))
