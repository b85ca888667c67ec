"""FAISS against Milvus Lite as the dense index's vector store (lextune's own store classes, the product path).

For each store and index type: build time (vectors in memory -> first answer: Milvus's inserts, index build
and load included), the stored size on disk, the process's peak memory above what it held before the build,
p50/p99 latency of single queries (k=10, query encoding excluded) and recall@10 against exact search.

- koblex-dev: the REAL 16k passage vectors of the bundled base model (from lextune's embedding cache; encoded
  when missing, ~11 min) and its real questions encoded as queries.
- synthetic: 500k vectors of 384 dimensions made from the real koblex-dev passage vectors, tiled with N(0, 0.02)
  noise and renormalised (as bench/retrieval_scale.py does: real neighbourhoods, so approximate recall means
  something; uniformly random vectors have none), and 200 queries that are perturbed real passage vectors.

Every configuration runs in a fresh process (memory measured cleanly). Prints a table and writes
bench/results/vectorstores.json.

    .venv/bin/python bench/vectorstores.py [--only koblex-dev|synthetic] [--synthetic-n 500000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO, passage_text

OUT = REPO / "bench" / "results" / "vectorstores.json"
# (store, index type, IVF probes): 16 probes of 4 sqrt(n) lists (the default until 2026-12-08) and 64 (since)
CONFIGS = [("faiss", "flat", 16), ("faiss", "hnsw", 16), ("faiss", "ivf", 16), ("faiss", "ivf", 64),
           ("milvus", "flat", 16), ("milvus", "hnsw", 16), ("milvus", "ivf", 16), ("milvus", "ivf", 64)]
LIMIT_S = 1800  # one configuration's build and queries


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry the parent's peak over the exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def koblex_vectors(work: Path) -> None:
    """The koblex-dev passage and question vectors of the bundled model, saved for the measuring processes."""
    from lextune.index.dense import encode_passages_cached
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import load_beir

    ds = load_beir(DATASETS["koblex-dev"])
    enc = BiEncoder("bundled:multilingual-e5-small")
    ids = list(ds.corpus)
    vecs = encode_passages_cached(enc, [passage_text(ds.corpus[i]) for i in ids])
    queries = enc.encode_queries(list(ds.queries.values()))
    np.save(work / "koblex-dev.vectors.npy", vecs.astype(np.float32))
    np.save(work / "koblex-dev.queries.npy", queries.astype(np.float32))


def synthetic_vectors(work: Path, n: int) -> None:
    if not (work / "koblex-dev.vectors.npy").is_file():
        koblex_vectors(work)
    real = np.load(work / "koblex-dev.vectors.npy")
    rng = np.random.default_rng(0)
    vecs = np.empty((n, real.shape[1]), dtype=np.float32)
    for s in range(0, n, 50_000):  # in blocks: one float64 draw of 500k x 384 would be 1.5 GB
        rows = min(50_000, n - s)
        block = real[np.arange(s, s + rows) % len(real)] + rng.normal(0, 0.02, (rows, real.shape[1])).astype(np.float32)
        vecs[s : s + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    q = real[rng.choice(len(real), 200, replace=False)] + rng.normal(0, 0.02, (200, real.shape[1])).astype(np.float32)
    np.save(work / "synthetic.vectors.npy", vecs)
    np.save(work / "synthetic.queries.npy", q / np.linalg.norm(q, axis=1, keepdims=True))


def measure(work: Path, dataset: str, store_name: str, index_type: str, nprobe: int) -> dict:
    """One configuration, in this (fresh) process."""
    from lextune.index.dense import DenseConfig
    from lextune.index.vectorstore import doc_fields, open_store

    vecs = np.load(work / f"{dataset}.vectors.npy")
    queries = np.load(work / f"{dataset}.queries.npy")
    ids = [f"d{i}" for i in range(len(vecs))]
    fields = [doc_fields({}) for _ in ids]
    folder = work / f"{dataset}-{store_name}-{index_type}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    store = open_store(DenseConfig(vector_store=store_name, index_type=index_type, ivf_nprobe=nprobe), folder)
    before = rss_mb()
    t0 = time.perf_counter()
    store.build(ids, vecs, fields)
    store.search(queries[:1], 10)
    build_s = time.perf_counter() - t0
    store.save(folder)
    lat, got = [], []
    for q in queries:
        t = time.perf_counter()
        got.append([d for d, _ in store.search(q[None, :], 10)[0]])
        lat.append(time.perf_counter() - t)
    peak = peak_mb() - before
    store.close()
    exact = np.argsort(-(queries @ vecs.T), axis=1)[:, :10]
    recall = float(np.mean([len({f"d{i}" for i in e} & set(g)) / 10 for e, g in zip(exact, got, strict=True)]))
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    shutil.rmtree(folder, ignore_errors=True)
    a = np.asarray(lat) * 1000
    return {"dataset": dataset, "store": store_name, "index_type": index_type, "nprobe": nprobe, "vectors": len(vecs),
            "queries": len(queries), "build_s": round(build_s, 2), "disk_mb": round(disk, 1),
            "peak_mem_mb_above_vectors": round(peak, 1), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "recall_at_10": round(recall, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["koblex-dev", "synthetic"])
    ap.add_argument("--synthetic-n", type=int, default=500_000)
    ap.add_argument("--one", nargs=5, metavar=("WORK", "DATASET", "STORE", "TYPE", "NPROBE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.one[0]), *args.one[1:4], int(args.one[4]))))
        return
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="lextune-vs-") as tmp:
        work = Path(tmp)
        for dataset in [args.only] if args.only else ["koblex-dev", "synthetic"]:
            if dataset == "koblex-dev":
                koblex_vectors(work)
            else:
                synthetic_vectors(work, args.synthetic_n)
            rows = []
            for store, kind, nprobe in CONFIGS:
                if nprobe != 16 and (kind != "ivf" or dataset == "synthetic"):
                    continue
                row = {"dataset": dataset, "store": store, "index_type": kind, "nprobe": nprobe}
                try:
                    done = subprocess.run([sys.executable, __file__, "--one", str(work), dataset, store, kind,
                                           str(nprobe)], capture_output=True, text=True, check=False, timeout=LIMIT_S)
                    if done.returncode != 0:
                        row["error"] = done.stderr.strip().splitlines()[-1:]
                    else:
                        row = json.loads(done.stdout.strip().splitlines()[-1])
                except subprocess.TimeoutExpired:
                    row["error"] = f"over {LIMIT_S} s"
                rows.append(row)
                print(rows[-1], flush=True)
            results[dataset] = {"date": time.strftime("%Y-%m-%d"), "machine": "2-core CPU VM, no GPU", "rows": rows}
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    for dataset, res in results.items():
        print(f"\n{dataset}")
        print(f"{'store':8} {'index':9} {'build s':>8} {'disk MB':>8} {'mem MB':>8} {'p50 ms':>7} {'p99 ms':>7} {'R@10':>6}")
        for r in res["rows"]:
            kind = r["index_type"] + (f"/{r['nprobe']}" if r["index_type"] == "ivf" else "")
            if "error" in r:
                print(f"{r['store']:8} {kind:9} error: {r['error']}")
                continue
            print(f"{r['store']:8} {kind:9} {r['build_s']:8.1f} {r['disk_mb']:8.1f} "
                  f"{r['peak_mem_mb_above_vectors']:8.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['recall_at_10']:6.3f}")


if __name__ == "__main__":
    main()
