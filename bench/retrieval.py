"""Retrieval quality of the baselines on the development benchmarks (read from ../shared/bench).

BM25 whitespace, BM25 Kiwi content morphemes, dense (bundled multilingual-e5-small), and RRF hybrid
(Kiwi BM25 + dense), for both query files (question; scenario + question) of each dataset.
Prints a table and writes bench/results/retrieval.json.

    .venv/bin/python bench/retrieval.py [--datasets koblex-dev koblex-fulllaw-dev] [--no-dense]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text

METRICS = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "retrieval.json"))
    ap.add_argument("--runs-dir", default=None, help="Also write every run as a TREC file here (for lextune eval).")
    args = ap.parse_args()

    from lextune.eval import evaluate_run
    from lextune.index.bm25 import BM25Config, BM25Index
    from lextune.index.dense import DenseConfig, DenseIndex
    from lextune.index.fusion import FusionConfig, fuse_runs
    from lextune.index.tokenize import TokenizerConfig
    from lextune.runs import load_beir, write_trec_run

    results: dict = {"benchmark": "retrieval", "date": time.strftime("%Y-%m-%d"), "datasets": {}}
    for name in args.datasets:
        ds = load_beir(DATASETS[name])
        ids = list(ds.corpus)
        texts = [passage_text(ds.corpus[i]) for i in ids]
        systems: dict[str, object] = {}
        t = time.perf_counter()
        systems["bm25-whitespace"] = BM25Index(BM25Config(tokenizer=TokenizerConfig(kind="whitespace"))).build(ids, texts)
        systems["bm25-kiwi"] = BM25Index(BM25Config()).build(ids, texts)
        build_s = time.perf_counter() - t
        if not args.no_dense:
            t = time.perf_counter()
            systems["dense-e5small"] = DenseIndex(DenseConfig()).build(ids, texts)
            dense_s = time.perf_counter() - t
        results["datasets"][name] = {"corpus": len(ids), "bm25_build_s": build_s}
        if not args.no_dense:
            results["datasets"][name]["dense_build_s"] = dense_s
        for qfile in ("queries.jsonl", "queries_bg.jsonl"):
            queries = load_beir(DATASETS[name], queries_file=qfile).queries
            runs = {sname: s.search(queries, 100) for sname, s in systems.items()}
            if "dense-e5small" in runs:
                runs["hybrid-rrf(kiwi+dense)"] = fuse_runs([runs["bm25-kiwi"], runs["dense-e5small"]],
                                                           FusionConfig(method="rrf", rrf_k=60))
            table = {s: evaluate_run(ds.qrels, r, METRICS) for s, r in runs.items()}
            if args.runs_dir:
                for sname, r in runs.items():
                    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in sname)
                    write_trec_run(r, Path(args.runs_dir) / f"{name}-{qfile.split('.')[0]}-{safe}.trec", tag=safe)
            results["datasets"][name][qfile] = table
            print(f"\n{name} / {qfile} ({len(queries)} queries, {len(ids)} passages)")
            print(f"{'system':26s}" + "".join(f"{m:>12s}" for m in METRICS))
            for s, row in table.items():
                print(f"{s:26s}" + "".join(f"{row[m]:12.3f}" for m in METRICS))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
