"""The structure steps of a retrieval pipeline (law routing, cross-reference expansion, article pooling), each
alone and all together, over the same first stages: an ablation on a BEIR dataset (issue 37).

    .venv/bin/python bench/structure_steps.py --dataset koblex-fulllaw-dev --index /tmp/fl_idx \
        --first bm25 --first legal-hybrid=bundled:lextune-legal-ko-small [--out bench/results/structure_steps.json]

The index is built with `lextune index build --beir DATA --out IDX` when missing (BM25 and the citations
between passages); a dense first stage encodes the corpus through the embedding cache. Step parameters are
the pipeline's defaults, fixed before any benchmark was run (never chosen on these questions). Prints a table
per query file (nDCG@10, Recall@20, Recall@100, the share of queries with 2-3 golds that have every gold in
the top 20, paired t-test p against the same first stage without steps) and each step's added latency per
query (p50/p99 over the queries, the first stage's run given).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO

VARIANTS = {
    "-": {},
    "+route": {"route": {}},
    "+expand": {"expand": {}},
    "+pool": {"pool": {}},
    "+route+expand": {"route": {}, "expand": {}},
    "+all": {"route": {}, "expand": {}, "pool": {}},
}
METRICS = ["ndcg@10", "recall@20", "recall@100"]


def _first_stage(spec: str) -> tuple[str, dict]:
    """``bm25``, or ``NAME=MODEL`` (a hybrid of BM25 and MODEL), or ``NAME=dense:MODEL``."""
    if spec == "bm25":
        return "bm25", {"retrievers": ["bm25"]}
    name, model = spec.split("=", 1)
    if model.startswith("dense:"):
        return name, {"retrievers": ["dense"], "dense_model": model[6:]}
    return name, {"retrievers": ["bm25", "dense"], "dense_model": model}


def _all_in_top(run: dict, qrels: dict, k: int) -> tuple[float, int]:
    """Share of the queries with 2 or more golds whose golds are all in the top ``k``, and how many such queries."""
    multi = [q for q, g in qrels.items() if sum(1 for r in g.values() if r > 0) >= 2]
    hit = 0
    for q in multi:
        top = {d for d, _ in sorted(run.get(q, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:k]}
        hit += all(d in top for d, r in qrels[q].items() if r > 0)
    return (hit / len(multi) if multi else float("nan")), len(multi)


def _step_latency(pipe, queries: dict[str, str], k: int = 100) -> dict[str, dict[str, float]]:
    """Each step's time per query (ms, p50/p99), applied to the first stage's run of that query."""
    from lextune.index.bm25 import run_top
    from lextune.index.pipeline import Trace

    first, _ = pipe.run(queries, k, skip=tuple(s.name for s in pipe.steps))
    out = {}
    for step in pipe.steps:
        times = []
        for q, text in queries.items():
            one = {q: run_top({q: first[q]}, step.want(k))[q]}
            t0 = time.perf_counter()
            step.apply({q: text}, one, Trace())
            times.append((time.perf_counter() - t0) * 1000)
        out[step.name] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="koblex-fulllaw-dev", choices=list(DATASETS))
    ap.add_argument("--index", required=True)
    ap.add_argument("--first", action="append", default=None, help="bm25 | NAME=MODEL (hybrid) | NAME=dense:MODEL")
    ap.add_argument("--queries", action="append", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--latency-only", action="store_true", help="Only each step's latency over --index (e.g. a "
                    "BM25 index of the whole legalize-kr tree), with the dataset's questions as queries.")
    args = ap.parse_args()

    from lextune.eval.evaluate import EvalConfig, evaluate
    from lextune.index import LexIndex
    from lextune.index.pipeline import PipelineConfig, PipelineResources, build_pipeline
    from lextune.runs import load_beir

    data = DATASETS[args.dataset]
    if not (Path(args.index) / "meta.json").is_file():
        subprocess.run([sys.executable, "-m", "lextune", "index", "build", "--beir", str(data), "--out", args.index],
                       check=True, cwd=REPO)
    index = LexIndex.load(args.index)
    resources = PipelineResources(say=print)
    if args.latency_only:
        t0 = time.perf_counter()
        pipe = build_pipeline(index, PipelineConfig.model_validate({**_first_stage((args.first or ["bm25"])[0])[1],
                                                                    **VARIANTS["+all"]}), resources)
        load_s = time.perf_counter() - t0
        queries = {}
        for qfile in args.queries or ["queries.jsonl", "queries_bg.jsonl"]:
            queries |= {f"{qfile}:{q}": t for q, t in load_beir(data, queries_file=qfile).queries.items()}
        latency = _step_latency(pipe, queries)
        s = index.structure()
        results = {"index": args.index, "documents": len(index.docs), "links": sum(map(len, s.cites.values())),
                   "laws": len(set(s.law.values())), "structure_load_s": load_s, "queries": len(queries),
                   "latency": latency}
        print(json.dumps(results, indent=1, ensure_ascii=False))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
        return
    cfg = EvalConfig(k_values=[10, 20, 100])
    results: dict = {"dataset": args.dataset, "index": args.index, "rows": [], "latency": {}}
    for qfile in args.queries or ["queries.jsonl", "queries_bg.jsonl"]:
        ds = load_beir(data, queries_file=qfile)
        for spec in args.first or ["bm25"]:
            name, first = _first_stage(spec)
            runs, pipes = {}, {}
            for variant, steps in VARIANTS.items():
                pipes[variant] = build_pipeline(index, PipelineConfig.model_validate({**first, **steps}), resources)
                runs[variant] = pipes[variant].search(ds.queries, 100)
            res = evaluate(ds.qrels, runs, cfg, query_ids=set(ds.queries))
            p = {m: res.p_vs_first(m) for m in METRICS}
            print(f"\n{args.dataset} / {qfile} / first stage {name} ({len(res.queries)} queries)")
            print(f"| steps | {' | '.join(METRICS)} | all golds in top 20 (2-3 golds) | p ndcg@10 | p recall@100 |")
            print("|---|" + "---|" * (len(METRICS) + 3))
            for variant in VARIANTS:
                share, n_multi = _all_in_top(runs[variant], ds.qrels, 20)
                row = {"queries_file": qfile, "first": name, "steps": variant,
                       **{m: res.overall[variant][m] for m in METRICS}, "all_golds_top20": share,
                       "multi_gold_queries": n_multi,
                       "p_ndcg@10": p["ndcg@10"].get(variant), "p_recall@100": p["recall@100"].get(variant)}
                results["rows"].append(row)
                fmt = lambda v: "" if v is None else f"{v:.3g}"  # noqa: E731
                print(f"| {variant} | " + " | ".join(f"{row[m]:.3f}" for m in METRICS)
                      + f" | {share:.3f} (of {n_multi}) | {fmt(row['p_ndcg@10'])} | {fmt(row['p_recall@100'])} |")
            if qfile == (args.queries or ["queries.jsonl"])[0] and name == _first_stage((args.first or ["bm25"])[0])[0]:
                results["latency"] = _step_latency(pipes["+all"], ds.queries)
                print("step latency per query (ms):", json.dumps(results["latency"]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
