"""A demo run's systems on the 20 validation questions shipped with lextune (never in the demo's table):
BM25, the run's base and tuned dense models and their RRF hybrids with BM25, nDCG@10 / Hit@1 / Recall@10. For choosing demo
settings without looking at the 60 questions the demo reports.

    .venv/bin/python bench/demo_validation.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="lextune demo/run folders (index/, train_biencoder/model/)")
    args = ap.parse_args()

    from lextune.demo import bundled_questions
    from lextune.eval import evaluate_run
    from lextune.index import LexIndex
    from lextune.index.fusion import FusionConfig, fuse_runs
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    ds = load_beir(bundled_questions("validation"), split="dev")
    for run in args.runs:
        index = LexIndex.load(f"{run}/index")
        dense = index.dense_with(BiEncoder(f"{run}/train_biencoder/model"), "flat")
        runs = {"bm25": index.bm25.search(ds.queries, 100), "dense-base": index.dense().search(ds.queries, 100),
                "dense-tuned": dense.search(ds.queries, 100)}
        runs["hybrid-base"] = fuse_runs([runs["bm25"], runs["dense-base"]], FusionConfig(method="rrf", rrf_k=60))
        runs["hybrid-tuned"] = fuse_runs([runs["bm25"], runs["dense-tuned"]], FusionConfig(method="rrf", rrf_k=60))
        table = {s: evaluate_run(ds.qrels, r, ["ndcg@10", "hit_rate@1", "recall@10"]) for s, r in runs.items()}
        base = (index.meta.get("dense_model") or {}).get("spec")
        print(json.dumps({"run": run, "base_model": base, "queries": len(ds.queries), "systems": table}))


if __name__ == "__main__":
    main()
