"""Distilled query encoders against their teacher, on the index the service searches: retrieval quality
(dense and the served hybrid) on a dev benchmark's questions and query time on this CPU.

    .venv/bin/python bench/query_encoder.py --index IDX --students DIR [DIR ...] [--dataset koblex-dev]

IDX is an index of the dataset's corpus built by the teacher (`lextune index build --dense MODEL`); each DIR
is a `lextune train query-encoder` output of that teacher. Queries are only encoded, never trained on.
Prints a table, writes bench/results/query_encoder-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO, query_timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--students", nargs="*", default=[])
    ap.add_argument("--dataset", default="koblex-dev", choices=list(DATASETS))
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import faiss

    from lextune.eval.metrics import evaluate_run
    from lextune.index import LexIndex
    from lextune.index.pipeline import explain_search
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    faiss.omp_set_num_threads(1)  # as the service runs it
    index = LexIndex.load(args.index)
    teacher = index.meta["dense_model"]["spec"]
    sets = {tag: load_beir(DATASETS[args.dataset], queries_file=f)
            for tag, f in (("q", "queries.jsonl"), ("bg", "queries_bg.jsonl"))}
    rows, teacher_top = [], {}
    for student in [None, *args.students]:
        enc = BiEncoder(teacher, backend=args.backend, query_model=student)
        name = "teacher (12 layers)" if student is None else f"{Path(student).name} ({len(enc.query_model_info['layers'])} layers)"
        row: dict = {"model": name, "student": student, "layers": None if student is None else enc.query_model_info["layers"]}
        dense = index.dense(enc)
        for tag, d in sets.items():
            qids = list(d.queries)
            drun = dense.search({q: d.queries[q] for q in qids}, 100)
            hits = explain_search(index, {q: d.queries[q] for q in qids}, 10, encoder=enc)
            hrun = {q: {h["id"]: h["score"] for h in hs} for q, hs in hits.items()}
            md = evaluate_run(d.qrels, drun, ["ndcg@10", "hit_rate@1", "recall@100"])
            mh = evaluate_run(d.qrels, hrun, ["ndcg@10", "hit_rate@1"])
            top = {q: set(sorted(drun[q], key=lambda x: -drun[q][x])[:10]) for q in qids}
            if student is None:
                teacher_top[tag] = top
            overlap = float(np.mean([len(top[q] & teacher_top[tag][q]) / 10 for q in qids]))
            row.update({f"dense_ndcg@10_{tag}": md["ndcg@10"], f"dense_hit@1_{tag}": md["hit_rate@1"],
                        f"dense_recall@100_{tag}": md["recall@100"], f"hybrid_ndcg@10_{tag}": mh["ndcg@10"],
                        f"hybrid_hit@1_{tag}": mh["hit_rate@1"], f"top10_overlap_with_teacher_{tag}": overlap})
        texts = list(sets["q"].queries.values())
        row.update({f"encode_{k}": v for k, v in query_timings(enc, texts).items()})
        t0 = time.perf_counter()
        for s in range(0, len(texts), 8):
            explain_search(index, {str(j): q for j, q in enumerate(texts[s : s + 8])}, 10, encoder=enc)
        row["search_batch8_ms_per_query"] = (time.perf_counter() - t0) * 1000 / len(texts)
        rows.append(row)
        print(f"{name:28s} dense nDCG@10 q {row['dense_ndcg@10_q']:.3f} bg {row['dense_ndcg@10_bg']:.3f} | "
              f"hybrid nDCG@10 q {row['hybrid_ndcg@10_q']:.3f} bg {row['hybrid_ndcg@10_bg']:.3f} "
              f"Hit@1 q {row['hybrid_hit@1_q']:.3f} bg {row['hybrid_hit@1_bg']:.3f} | top-10 overlap "
              f"{row['top10_overlap_with_teacher_q']:.2f}/{row['top10_overlap_with_teacher_bg']:.2f} | encode "
              f"p50 {row['encode_single_ms_p50']:.1f} ms, batch-8 {row['encode_batch8_ms_per_query']:.1f} ms/q, "
              f"search batch-8 {row['search_batch8_ms_per_query']:.1f} ms/q", flush=True)
    out = Path(args.out or REPO / "bench" / "results" / f"query_encoder-{args.dataset}.json")
    out.write_text(json.dumps({"benchmark": "query_encoder", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "dataset": args.dataset, "index": args.index, "teacher": teacher,
                               "backend": args.backend, "documents": len(index.docs), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
