"""Did the move from ranx's kernels to lextune's exact metrics change a number? Evaluates the same
TREC runs twice: with ``lextune.eval`` (exact, eval/metrics.py) and with ranx the way lextune called it
before 2026-12-03 (canonical ranking, a ``__no_result__`` placeholder for an empty query), and prints
both with their largest difference. Writes bench/results/metric_parity.json.

    .venv/bin/python bench/metric_parity.py --qrels DATA/qrels/dev.tsv RUN.trec [RUN.trec ...]
    .venv/bin/python bench/metric_parity.py --bm25 koblex-dev      # BM25 (Kiwi) runs of a dev benchmark
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text

METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1", "map@100", "precision@10"]


def ranx_as_before(qrels: dict, run: dict, metrics: list[str]) -> dict[str, float]:
    """lextune 0.1.0's evaluation through ranx, kept here only to compare."""
    import ranx

    from lextune.runs import canonical_ranking

    judged = {q: d for q, d in qrels.items() if any(r > 0 for r in d.values())}
    filled = {q: canonical_ranking(run.get(q) or {"__no_result__": 0.0}) for q in judged}
    res = ranx.evaluate(ranx.Qrels(judged), ranx.Run(filled), metrics, make_comparable=True)
    return {m: float(v) for m, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*", help="TREC run files")
    ap.add_argument("--qrels", help="qrels of the runs (BEIR TSV or TREC)")
    ap.add_argument("--run-queries-only", action="store_true",
                    help="Judge only the queries the runs answer (a run of a sample of the qrels' queries).")
    ap.add_argument("--bm25", nargs="*", default=[], choices=list(DATASETS), help="BM25 (Kiwi) runs of these")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "metric_parity.json"))
    args = ap.parse_args()

    from lextune.eval import evaluate_run
    from lextune.runs import load_beir, read_qrels, read_trec_run

    cases: list[tuple[str, dict, dict]] = []
    if args.runs:
        if not args.qrels:
            ap.error("--qrels is needed with run files")
        qrels = read_qrels(args.qrels)
        for r in args.runs:
            run = read_trec_run(r)
            judged = {q: d for q, d in qrels.items() if q in run} if args.run_queries_only else qrels
            cases.append((Path(r).name, judged, run))
    for name in args.bm25:
        from lextune.index.bm25 import BM25Config, BM25Index

        index = None
        for qfile in ("queries.jsonl", "queries_bg.jsonl"):
            ds = load_beir(DATASETS[name], queries_file=qfile)
            if index is None:
                ids = list(ds.corpus)
                index = BM25Index(BM25Config()).build(ids, [passage_text(ds.corpus[i]) for i in ids])
            cases.append((f"{name}/{qfile}/bm25-kiwi", ds.qrels, index.search(ds.queries, 100)))
    rows = []
    for label, qrels, run in cases:
        ours = evaluate_run(qrels, run, METRICS)
        before = ranx_as_before(qrels, run, METRICS)
        diff = max(abs(ours[m] - before[m]) for m in METRICS)
        rows.append({"run": label, "lextune": ours, "ranx_before": before, "max_abs_diff": diff})
        print(f"{label}: " + "  ".join(f"{m} {ours[m]:.4f}/{before[m]:.4f}" for m in METRICS) + f"  max diff {diff:.2e}")
    Path(args.out).write_text(json.dumps({"benchmark": "metric_parity", "date": time.strftime("%Y-%m-%d"),
                                          "metrics": METRICS, "rows": rows}, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
