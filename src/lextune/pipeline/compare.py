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
from lextune.index.bm25 import run_top
from lextune.index.fusion import FusionConfig, fuse_runs
from lextune.runs import Run, canonical_ranking, drop_ignored

HEADLINE = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


def blend(first: Run, reranked: Run, weight: float, k: int) -> Run:
    """Rank-normalised blend of the first stage and the reranker on the reranked head:
    ``weight / (rank_rerank) + (1 - weight) / (rank_first)`` (both from 1); the rest keeps its order."""
    out: Run = {}
    for q, docs in reranked.items():
        head = sorted(docs.items(), key=lambda kv: -kv[1])[:k]
        # The first stage's order with evaluation's tie-break (by id), so that weight 0 gives it back exactly.
        first_ranked = list(canonical_ranking(first.get(q, {})))
        first_order = {d: i + 1 for i, d in enumerate(first_ranked)}
        scored = {d: weight / (i + 1) + (1 - weight) / first_order.get(d, len(first_order) + 1)
                  for i, (d, _) in enumerate(head)}
        tail = [d for d in first_ranked if d not in scored]
        out[q] = {**scored, **{d: -1.0 - i for i, d in enumerate(tail)}}
    return out


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


def _auto_weight(ctx, reranker, index_of, fusion, base_dense_of, tuned_dense_of) -> tuple[float, dict]:
    """Choose the blend weight on the run's synthetic validation split (held out from training by chunk)."""
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
    index = index_of()
    dense = tuned_dense_of(index) or base_dense_of(index)
    first = run_top(fuse_runs([index.bm25.search(queries, 100), dense.search(queries, 100)], fusion), 100)
    ctx.say("eval", f"choosing the rerank weight on {len(queries)} synthetic validation queries")
    reranked = reranker.rerank(queries, first, index.texts, cfg.k_rerank)
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
    from lextune.index.rerank import RerankConfig, Reranker
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    cfg = ctx.config.eval
    fusion = FusionConfig(method="rrf", rrf_k=cfg.rrf_k)
    tuned_spec = str(ctx.biencoder) if ctx.biencoder else None
    reranker = None
    if ctx.reranker:
        reranker = Reranker(RerankConfig(model=str(ctx.reranker), k=cfg.k_rerank, max_length=cfg.rerank_max_length))
    base_enc = BiEncoder(ctx.config.base_model)
    tuned_enc = BiEncoder(tuned_spec) if tuned_spec else None
    table: dict = {"datasets": {}}
    # The run's index and each index's base and tuned dense indexes, made once for the weight choice and every
    # dataset (an index built without a dense part is encoded with the base model here, once).
    @functools.cache
    def run_index():
        from lextune.index import LexIndex

        return LexIndex.load(ctx.dir("index"))

    made: dict = {}

    def dense_of(index, enc, name: str):
        """The index's dense part for ``enc``: its own (the base model's, when built), else encoded once."""
        if (index.folder, name) not in made:
            own = index.dense(enc) if name == "base" else None
            if own is None:
                ctx.say("eval", f"encoding {len(index.docs)} passages of {index.folder.name} with the {name} model "
                                "(cached)")
                own = index.dense_with(enc, ctx.config.dense_index_type)
            made[index.folder, name] = own
        return made[index.folder, name]

    def base_dense_of(index):
        return dense_of(index, base_enc, "base")

    def tuned_dense_of(index):
        return dense_of(index, tuned_enc, "tuned") if tuned_enc is not None else None

    weight = cfg.rerank_weight
    if reranker is not None and weight == "auto":
        weight, table["rerank_weight"] = _auto_weight(ctx, reranker, run_index, fusion, base_dense_of, tuned_dense_of)
    for ds_cfg in cfg.datasets:
        path = Path(ds_cfg.path) if ds_cfg.path else ctx.dir("synth")
        index = None
        tuned_dense = None
        for qfile in ds_cfg.queries_files:
            ds = load_beir(path, queries_file=qfile, split=ds_cfg.split)
            if index is None:
                index = run_index() if ds_cfg.corpus == "run" else _dataset_index(ctx, ds_cfg, ds)
                base_dense = base_dense_of(index)
                tuned_dense = tuned_dense_of(index)
            queries = {q: t for q, t in ds.queries.items() if q in ds.qrels}
            if ds_cfg.max_queries and len(queries) > ds_cfg.max_queries:
                queries = {q: queries[q] for q in sorted(_dataset_sample(ds_cfg, ds, list(queries)))}
                ds.queries, ds.qrels = queries, {q: ds.qrels[q] for q in queries}
            runs: dict[str, Run] = {"bm25": index.bm25.search(queries, 100), "dense-base": base_dense.search(queries, 100)}
            runs["hybrid-base"] = run_top(fuse_runs([runs["bm25"], runs["dense-base"]], fusion), 100)
            if tuned_dense is not None:
                runs["dense-tuned"] = tuned_dense.search(queries, 100)
                runs["hybrid-tuned"] = run_top(fuse_runs([runs["bm25"], runs["dense-tuned"]], fusion), 100)
            if reranker is not None:
                first = runs.get("hybrid-tuned", runs["hybrid-base"])
                name = ("hybrid-tuned" if "hybrid-tuned" in runs else "hybrid-base") + "+rerank"
                if weight == 0:  # blend(first, ..., 0) is the first stage exactly: no need to score anything
                    ctx.say("eval", f"{ds_cfg.name}/{qfile}: rerank weight 0, so {name} is its first stage")
                    runs[name] = first
                else:
                    ctx.say("eval", f"{ds_cfg.name}/{qfile}: reranking the top {cfg.k_rerank} of {len(queries)} queries")
                    reranked = reranker.rerank(queries, first, index.texts, cfg.k_rerank)
                    runs[name] = reranked if weight is None else blend(first, reranked, weight, cfg.k_rerank)
            provenance = {"bm25": {"index": str(index.folder), "bm25": index.meta.get("config", {}).get("bm25")},
                          "base_model": base_enc.describe() | {"fingerprint": base_enc.fingerprint()},
                          "tuned_model": (tuned_enc.describe() | {"fingerprint": tuned_enc.fingerprint()})
                          if tuned_enc else None, "reranker": str(ctx.reranker) if ctx.reranker else None,
                          "fusion": fusion.model_dump(), "k_rerank": cfg.k_rerank, "rerank_weight": weight}
            systems = [System(n, r, {"system": n, **provenance}) for n, r in runs.items()]
            out = ctx.dir("eval") / ds_cfg.name / Path(qfile).stem
            result = run_evaluation(ds, systems, out, config=EvalConfig(), queries_file=qfile, split=ds_cfg.split,
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
