"""The BiEncoder backends side by side (torch, onnx, onnx-int8): query latency on this CPU, cosine to the
torch vectors, and dense retrieval quality with the torch-built passage vectors of a dev benchmark
(what serving does: queries encoded by the backend, the index built once at fp32).

    .venv/bin/python bench/onnx_backend.py [--dataset koblex-dev] [--model bundled:multilingual-e5-small]

Passage vectors come from lextune's embedding cache (bench/encode_corpora.py fills it). Prints a table,
writes bench/results/onnx_backend-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO, passage_text, query_timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="koblex-dev", choices=list(DATASETS))
    ap.add_argument("--model", default="bundled:multilingual-e5-small")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from lextune.eval.metrics import evaluate_run
    from lextune.index.dense import encode_passages_cached
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    rows = []
    ref_q: dict[str, np.ndarray] = {}
    encoders = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        t0 = time.perf_counter()
        encoders[backend] = BiEncoder(args.model, backend=backend)
        print(f"{backend}: ready in {time.perf_counter() - t0:.1f} s (first use exports and caches the ONNX file)")
    ds = load_beir(DATASETS[args.dataset])
    ids = list(ds.corpus)
    passages = encode_passages_cached(encoders["torch"], [passage_text(ds.corpus[i]) for i in ids])
    for backend, enc in encoders.items():
        row: dict = {"backend": backend, "threads": torch.get_num_threads()}
        for qfile in ("queries.jsonl", "queries_bg.jsonl"):
            d = load_beir(DATASETS[args.dataset], queries_file=qfile)
            qids = list(d.queries)
            vecs = enc.encode_queries([d.queries[q] for q in qids])
            if backend == "torch":
                ref_q[qfile] = vecs
            cos = (vecs * ref_q[qfile]).sum(1)
            scores = vecs @ passages.T
            top = np.argsort(-scores, axis=1)[:, :100]
            run = {q: {ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(qids)}
            m = evaluate_run(d.qrels, run, ["ndcg@10", "recall@100", "hit_rate@1"])
            tag = "q" if qfile == "queries.jsonl" else "bg"
            row[f"ndcg@10_{tag}"] = m["ndcg@10"]
            row[f"recall@100_{tag}"] = m["recall@100"]
            row[f"hit@1_{tag}"] = m["hit_rate@1"]
            row[f"cos_min_{tag}"] = float(cos.min())
        row.update(query_timings(enc, list(ds.queries.values())))
        rows.append(row)
        print(f"{backend:10s} nDCG@10 q {row['ndcg@10_q']:.3f} bg {row['ndcg@10_bg']:.3f}  "
              f"Hit@1 q {row['hit@1_q']:.3f} bg {row['hit@1_bg']:.3f}  cos min {min(row['cos_min_q'], row['cos_min_bg']):.4f}  "
              f"single p50 {row['single_ms_p50']:.1f} ms p99 {row['single_ms_p99']:.1f} ms  "
              f"batch-8 {row['batch8_ms_per_query']:.1f} ms/query", flush=True)
    out = Path(args.out or REPO / "bench" / "results" / f"onnx_backend-{args.dataset}.json")
    out.write_text(json.dumps({"benchmark": "onnx_backend", "date": time.strftime("%Y-%m-%d"), "dataset": args.dataset,
                               "model": args.model, "passages": len(ids), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
