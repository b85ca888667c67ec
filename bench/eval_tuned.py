"""Base versus tuned dense and hybrid on a BEIR dataset, without a reranker (issue 7 proof on the large
corpus): what the eval stage of `lextune run` does for one dataset, usable on a model a run trained.

    .venv/bin/python bench/eval_tuned.py --tuned runs/koblex-dev/train_biencoder/model \
        --dataset koblex-fulllaw-dev [--index IDX] [--out bench/results/eval_tuned-koblex-fulllaw-dev.json]

The tuned model's passage vectors go to lextune's embedding cache as they are made (a killed run
continues). Prints a table per query file; writes JSON and, per query file, a `lextune eval` folder.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text

HEADLINE = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tuned", required=True)
    ap.add_argument("--base", default="bundled:multilingual-e5-small")
    ap.add_argument("--dataset", default="koblex-fulllaw-dev", choices=list(DATASETS))
    ap.add_argument("--index", default=None, help="An index of the dataset (BM25 + base dense); built if missing.")
    ap.add_argument("--eval-dir", default="/tmp/eval_tuned")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from lextune.eval.evaluate import EvalConfig
    from lextune.eval.run import System, run_evaluation
    from lextune.index import IndexBuildConfig, LexIndex, build_index
    from lextune.index.bm25 import run_top
    from lextune.index.dense import DenseConfig
    from lextune.index.fusion import FusionConfig, fuse_runs
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    path = DATASETS[args.dataset]
    ds = load_beir(path)
    index_dir = Path(args.index or Path(args.eval_dir) / f"{args.dataset}-index")
    if not (index_dir / "meta.json").is_file():
        docs = [{"id": i, "title": d["title"], "text": d["text"], "contents": passage_text(d)} for i, d in ds.corpus.items()]
        build_index(docs, index_dir, IndexBuildConfig(dense=DenseConfig(model=args.base)), source={"beir": str(path)})
    index = LexIndex.load(index_dir)
    base_dense = index.dense(BiEncoder(args.base))
    tuned_enc = BiEncoder(args.tuned)
    t = time.perf_counter()
    tuned_dense = index.dense_with(
        tuned_enc, progress=lambda d, n: print(f"tuned encoding {d}/{n} ({time.perf_counter() - t:.0f} s)", flush=True))
    fusion = FusionConfig(method="rrf", rrf_k=60)
    result: dict = {"benchmark": "eval_tuned", "date": time.strftime("%Y-%m-%d"), "dataset": args.dataset,
                    "tuned": args.tuned, "tuned_fingerprint": tuned_enc.fingerprint(), "encode_s": time.perf_counter() - t,
                    "query_files": {}}
    for qfile in ("queries.jsonl", "queries_bg.jsonl"):
        qds = load_beir(path, queries_file=qfile)
        queries = {q: x for q, x in qds.queries.items() if q in qds.qrels}
        runs = {"bm25": index.bm25.search(queries, 100), "dense-base": base_dense.search(queries, 100)}
        runs["hybrid-base"] = run_top(fuse_runs([runs["bm25"], runs["dense-base"]], fusion), 100)
        runs["dense-tuned"] = tuned_dense.search(queries, 100)
        runs["hybrid-tuned"] = run_top(fuse_runs([runs["bm25"], runs["dense-tuned"]], fusion), 100)
        systems = [System(n, r, {"system": n, "tuned": args.tuned}) for n, r in runs.items()]
        ev = run_evaluation(qds, systems, Path(args.eval_dir) / args.dataset / Path(qfile).stem, config=EvalConfig(),
                            queries_file=qfile, report=False)
        table = {s: {m: ev.overall[s][m] for m in HEADLINE} for s in ev.systems}
        result["query_files"][qfile] = table
        print(f"\n{args.dataset} / {qfile} ({len(ev.queries)} queries)")
        print(f"{'system':14s}" + "".join(f"{m:>12s}" for m in HEADLINE))
        for s, m in table.items():
            print(f"{s:14s}" + "".join(f"{m[x]:12.3f}" for x in HEADLINE))
    out = Path(args.out or REPO / "bench" / "results" / f"eval_tuned-{args.dataset}.json")
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
