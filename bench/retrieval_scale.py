"""Retrieval at full scale: every paragraph chunk of the legalize-kr tree (~480k chunks).

- BM25 (Kiwi morphemes): index build time and peak memory; p50/p99 latency of 1,000 single queries.
- Dense FAISS exact inner product at the same size: encoding 480k passages on this CPU takes many
  hours, so the index holds REAL 384-d vectors of the development corpora (whatever of them lextune's
  embedding cache holds, at least the 16k of koblex-dev) tiled to full size with small Gaussian
  perturbations and re-normalised. Query vectors are perturbed real passage vectors; query encoding is excluded.

Queries are article titles and paragraph openings of the tree itself (public statute text).
Prints a table and writes bench/results/retrieval_scale.json.

    .venv/bin/python bench/retrieval_scale.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO, passage_text

SHARED = REPO.parent / "shared" / "corpus"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean())}


def dense_scale(ids: list[str], args) -> dict:
    """Exact (and optionally approximate) inner-product search over real vectors tiled to len(ids)."""
    from lextune.index.dense import DenseConfig, DenseIndex, EmbeddingCache, text_key
    from lextune.models.biencoder import BiEncoder
    from lextune.models.bundled import lextune_home
    from lextune.runs import load_beir

    enc = BiEncoder("bundled:multilingual-e5-small")
    cache = EmbeddingCache(lextune_home() / "cache" / "embeddings", enc.fingerprint())
    found = []
    for name in DATASETS:  # every real vector of the development corpora that is in the cache
        ds = load_beir(DATASETS[name])
        vecs, _ = cache.get([text_key(passage_text(d)) for d in ds.corpus.values()])
        if len(vecs):
            found.append(vecs)
    if not found:
        raise SystemExit("no cached development-corpus vectors: run bench/encode_corpora.py first")
    real = np.concatenate(found)
    print(f"real vectors from the cache: {len(real)}")
    nrng = np.random.default_rng(0)
    reps = int(np.ceil(len(ids) / len(real)))
    tiled = np.concatenate([real + (nrng.normal(0, 0.02, real.shape) if r else 0) for r in range(reps)])[: len(ids)]
    tiled = (tiled / np.linalg.norm(tiled, axis=1, keepdims=True)).astype(np.float32)
    qv = real[nrng.integers(0, len(real), args.queries)] + nrng.normal(0, 0.02, (args.queries, real.shape[1]))
    qv = (qv / np.linalg.norm(qv, axis=1, keepdims=True)).astype(np.float32)
    out: dict = {"vectors": "real koblex-dev / koblex-fulllaw-dev embeddings (cached ones) tiled with N(0, 0.02) "
                            "noise, renormalised; queries are perturbed real vectors (encoding excluded)",
                 "real_vectors": len(real), "dim": int(tiled.shape[1])}
    exact_top: list[set] = []
    for kind in args.index_types:
        t = time.perf_counter()
        dense = DenseIndex(DenseConfig(index_type=kind)).build_from_vectors(ids, tiled)
        build = time.perf_counter() - t
        lat, tops = [], []
        for i in range(args.queries):
            t = time.perf_counter()
            run = dense.search_vectors([str(i)], qv[i : i + 1], k=10)
            lat.append(time.perf_counter() - t)
            tops.append(set(run[str(i)]))
        row = {"build_s": build, **percentiles(lat)}
        if kind == "flat":
            exact_top = tops
        elif exact_top:
            row["recall@10_vs_exact"] = float(np.mean([len(a & b) / 10 for a, b in zip(tops, exact_top, strict=True)]))
        out[kind] = row
        print(f"dense {kind} over {len(ids)} x {tiled.shape[1]}: build {build:.1f} s, p50 {row['p50_ms']:.1f} ms, "
              f"p99 {row['p99_ms']:.1f} ms" + (f", recall@10 vs exact {row['recall@10_vs_exact']:.3f}" if "recall@10_vs_exact" in row else ""))
        del dense
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=str(SHARED / "legalize-kr.tar.gz"))
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--limit", type=int, default=None, help="Use only the first N chunks (quick runs).")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "retrieval_scale.json"))
    ap.add_argument("--dense-only", type=int, default=None, metavar="N",
                    help="Skip ingest and BM25; measure dense search over N tiled vectors only.")
    ap.add_argument("--index-types", nargs="+", default=["flat"], help="flat, hnsw and/or ivf")
    args = ap.parse_args()
    if args.dense_only:
        result = {"benchmark": "retrieval_scale_dense", "date": time.strftime("%Y-%m-%d"), "chunks": args.dense_only,
                  "queries": args.queries, "dense": dense_scale([f"c{i}" for i in range(args.dense_only)], args)}
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return

    from lextune.index.bm25 import BM25Config, BM25Index
    from lextune.ingest import IngestConfig, ingest_chunks

    t = time.perf_counter()
    chunks, _ = ingest_chunks([args.tree], IngestConfig())
    chunks = chunks[: args.limit] if args.limit else chunks
    ingest_s = time.perf_counter() - t
    ids = [c.id for c in chunks]
    texts = [c.contents for c in chunks]
    print(f"{len(chunks)} chunks ingested in {ingest_s:.0f} s (rss {rss_mb():.0f} MB)")

    rng = random.Random(0)
    picks = rng.sample(range(len(chunks)), args.queries)
    queries = [chunks[i].text.split("\n")[0][:60] for i in picks]

    growth = {}
    batch = {str(i): q for i, q in enumerate(queries)}
    for size in sorted({min(16_463, len(ids)), min(100_000, len(ids))}):
        t = time.perf_counter()
        small = BM25Index(BM25Config()).build(ids[:size], texts[:size])
        build = time.perf_counter() - t
        t = time.perf_counter()
        small.search(batch, 100)
        growth[size] = {"build_s": build, "top100_all_queries_s": time.perf_counter() - t}
        print(f"BM25 at {size} chunks: build {build:.0f} s, top-100 for {len(batch)} queries {growth[size]['top100_all_queries_s']:.1f} s")
        del small
    base_rss = current_rss_mb()
    t = time.perf_counter()
    bm25 = BM25Index(BM25Config()).build(ids, texts)
    bm25_build = time.perf_counter() - t
    bm25_rss = current_rss_mb()
    t = time.perf_counter()
    bm25.search(batch, 100)
    growth[len(ids)] = {"build_s": bm25_build, "top100_all_queries_s": time.perf_counter() - t}
    print(f"BM25 build {bm25_build:.0f} s, rss {bm25_rss:.0f} MB after vs {base_rss:.0f} MB before (index ~{bm25_rss - base_rss:.0f} MB)")
    lat = []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        bm25.search({str(i): q}, k=10)
        lat.append(time.perf_counter() - t)
    bm25_lat = percentiles(lat)
    print(f"BM25 single-query latency over {len(queries)}: p50 {bm25_lat['p50_ms']:.1f} ms, p99 {bm25_lat['p99_ms']:.1f} ms")
    del bm25

    dense_result = dense_scale(ids, args)

    result = {
        "benchmark": "retrieval_scale", "date": time.strftime("%Y-%m-%d"), "chunks": len(ids),
        "ingest_s": ingest_s, "queries": args.queries,
        "bm25": {"build_s": bm25_build, "rss_after_mb": bm25_rss, "rss_before_mb": base_rss,
                 "index_mb_estimate": bm25_rss - base_rss, **bm25_lat},
        "bm25_growth": growth,
        "dense": dense_result,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
