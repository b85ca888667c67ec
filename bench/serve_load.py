"""Load on the HTTP service over loopback: throughput, p50/p99 latency and errors per endpoint at
concurrency 1, 8 and 32 (a bounded number of requests each).

The server runs as its own process (`lextune serve`) with the bundled multilingual-e5-small, an index
(default: koblex-dev's 16k passages, BM25 + dense, vectors from the embedding cache; or --index), and the
bundled e5 loaded as a cross-encoder for /v1/rerank (untrained head: a cost figure, not quality).
Search is measured without reranking (the goal is for hybrid retrieval); /v1/rerank scores 8 documents.
Queries are koblex-dev's questions, used only as load. Prints a table, writes bench/results/serve_load.json.

    .venv/bin/python bench/serve_load.py [--index IDX] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _corpora import DATASETS, REPO

LEXTUNE = str(Path(sys.executable).parent / "lextune")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, path: str, bodies: list[dict], concurrency: int, n: int) -> dict:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(i: int) -> None:
            async with sem:
                t = time.perf_counter()
                try:
                    r = await client.post(path, json=bodies[i % len(bodies)])
                    if r.status_code != 200:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                lat.append(time.perf_counter() - t)

        await one(0)  # warm-up, not counted
        lat.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {"requests": n, "concurrency": concurrency, "wall_s": wall, "throughput_rps": n / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "errors": sum(errors.values()), "error_kinds": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=None, help="An index folder (default: build one over koblex-dev).")
    ap.add_argument("--requests", type=int, default=200, help="Requests per endpoint at concurrency 8 and 32.")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"],
                    help="How the service runs the embedding model (ServeConfig.backend).")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="More ServeConfig settings, KEY=VALUE.")
    ap.add_argument("--endpoints", nargs="+", default=["/v1/embeddings", "/v1/search", "/v1/rerank"])
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "serve_load.json"))
    args = ap.parse_args()

    from lextune.models.bundled import bundled_model_dir
    from lextune.runs import load_beir

    ds = load_beir(DATASETS["koblex-dev"])
    questions = list(ds.queries.values())
    docs = [d["text"] for d in list(ds.corpus.values())[:64]]
    with tempfile.TemporaryDirectory() as tmp:
        index = args.index
        if index is None:
            index = str(Path(tmp) / "idx")
            subprocess.run([LEXTUNE, "index", "build", "--beir", str(DATASETS["koblex-dev"]), "--out", index,
                            "--dense", "bundled:multilingual-e5-small"], check=True)
        port = free_port()
        env = dict(os.environ, LEXTUNE_API_KEY="")
        env.pop("LEXTUNE_API_KEY")
        server = subprocess.Popen([LEXTUNE, "serve", "--index", index, "--reranker", str(bundled_model_dir()),
                                   "--port", str(port), "--set", "reranker_max_length=256",
                                   "--set", f"backend={args.backend}", *[x for kv in args.sets for x in ("--set", kv)]],
                                  env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.time() + 300
            while time.time() < deadline:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(1)
            else:
                raise SystemExit("server did not start")
            endpoints = {
                "/v1/embeddings": [{"input": q, "input_type": "query"} for q in questions],
                "/v1/search": [{"query": q, "k": 10, "rerank": False} for q in questions],
                "/v1/rerank": [{"query": q, "documents": docs[i % 8 * 8 : i % 8 * 8 + 8], "top_n": 3}
                               for i, q in enumerate(questions)],
            }
            backend = httpx.get(url + "/health").json().get("backend")
            print(f"embedding backend: {backend}")
            rows = []
            for path, bodies in endpoints.items():
                if path not in args.endpoints:
                    continue
                for c in args.concurrency:
                    n = args.requests if c > 1 else max(30, args.requests // 4)
                    if path == "/v1/rerank":
                        n = max(20, n // 4)
                    row = {"endpoint": path, **asyncio.run(load(url, path, bodies, c, n))}
                    rows.append(row)
                    print(f"{path:16s} c={c:2d} n={n:4d}  {row['throughput_rps']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms"
                          f"  p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    result = {"benchmark": "serve_load", "date": time.strftime("%Y-%m-%d"), "index": args.index or "koblex-dev (16,463 passages)",
              "model": "bundled:multilingual-e5-small", "backend": backend, "settings": args.sets,
              "machine": "2-core AMD EPYC VM (AVX2), load generator on the same cores", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
