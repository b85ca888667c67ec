"""Load on the HTTP service over loopback: throughput, p50/p99 latency and errors per endpoint at
concurrency 1, 8 and 32 (a bounded number of requests each).

The server runs as its own process (`lextune serve`) with the bundled multilingual-e5-small, an index
(default: koblex-dev's 16k passages, BM25 + dense, vectors from the embedding cache; or --index), and the
bundled e5 loaded as a cross-encoder for /v1/rerank (untrained head: a cost figure, not quality).
Search is measured without reranking (the goal is for hybrid retrieval); /v1/rerank scores 8 documents.
Queries are koblex-dev's questions, used only as load. Prints a table, writes bench/results/serve_load.json.

    .venv/bin/python bench/serve_load.py [--index IDX] [--requests 200]
    .venv/bin/python bench/serve_load.py --index IDX --poison 0.05 --concurrency 32   # the poison soak

``--poison F`` mixes a share F of malformed requests into the load (lone surrogates, broken or wrongly
typed JSON, numbers past float range, deep nesting): the clean requests must all succeed, the poisoned
ones must all get a 4xx in the documented error shape; latency is of the clean ones.
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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


POISON = {
    "/v1/embeddings": [b'{"input": "\\ud800abc", "input_type": "query"}', b'{"input": ["ok", "\\udfff"]}',
                       b'{"input": [1, 2]}', b'{"input": "a"', b'{"input": ' + b"[" * 3000 + b"]" * 3000 + b"}",
                       b'{"input": "a", "dimensions": 1e999}', b"\xff\xfe"],
    "/v1/search": [b'{"query": "\\udfff", "k": 10}', b'{"query": "q", "k": 1e309}', b'{"query": ["q"]}',
                   b'{"query": "q", "k": 10', b"[" * 3000 + b"]" * 3000, b"null"],
    "/v1/rerank": [b'{"query": "\\ud83d", "documents": ["d"]}', b'{"query": "q", "documents": [{"text": "\\udc00"}]}',
                   b'{"query": "q", "documents": "abc"}', b'{"query": "q", "documents": ["a"], "top_n": -1}'],
}


async def load(url: str, path: str, bodies: list[dict], concurrency: int, n: int, poison: float = 0.0) -> dict:
    """``n`` requests at ``concurrency``; with ``poison`` a share of them malformed (every 1/poison-th)."""
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    poisoned: dict[str, int] = {}
    every = round(1 / poison) if poison > 0 else 0
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as client:
        async def one(i: int) -> None:
            bad = every and i % every == every - 1
            async with sem:
                t = time.perf_counter()
                try:
                    if bad:
                        bodies_bad = POISON[path]
                        r = await client.post(path, content=bodies_bad[(i // every) % len(bodies_bad)],
                                              headers={"content-type": "application/json"})
                        shaped = r.status_code in (400, 413, 422) and set(r.json()) == {"error"}
                        key = str(r.status_code) if shaped else f"undocumented {r.status_code}"
                        poisoned[key] = poisoned.get(key, 0) + 1
                        return
                    r = await client.post(path, json=bodies[i % len(bodies)])
                    if r.status_code != 200:
                        errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    target = poisoned if bad else errors
                    target[type(exc).__name__] = target.get(type(exc).__name__, 0) + 1
                if not bad:
                    lat.append(time.perf_counter() - t)

        await one(0)  # warm-up, not counted
        lat.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    out = {"requests": n, "concurrency": concurrency, "wall_s": wall, "throughput_rps": n / wall,
           "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
           "errors": sum(errors.values()), "error_kinds": errors}
    if every:
        out.update(poisoned=sum(poisoned.values()), poisoned_answers=poisoned, clean=len(lat))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=None, help="An index folder (default: build one over koblex-dev).")
    ap.add_argument("--requests", type=int, default=200, help="Requests per endpoint at concurrency 8 and 32.")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"],
                    help="How the service runs the embedding model (ServeConfig.backend).")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="More ServeConfig settings, KEY=VALUE.")
    ap.add_argument("--endpoints", nargs="+", default=["/v1/embeddings", "/v1/search", "/v1/rerank"])
    ap.add_argument("--poison", type=float, default=0.0, help="Share of malformed requests mixed in (0.05 = 5%%).")
    ap.add_argument("--out", default=None, help="Default bench/results/serve_load.json (-poison.json with --poison).")
    args = ap.parse_args()
    if args.out is None:
        args.out = str(REPO / "bench" / "results" / ("serve_load-poison.json" if args.poison else "serve_load.json"))

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
                    row = {"endpoint": path, **asyncio.run(load(url, path, bodies, c, n, args.poison))}
                    rows.append(row)
                    extra = (f"  poisoned {row['poisoned']} -> {row['poisoned_answers']}" if args.poison else "")
                    print(f"{path:16s} c={c:2d} n={n:4d}  {row['throughput_rps']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms"
                          f"  p99 {row['p99_ms']:7.1f} ms  errors {row['errors']}{extra}", flush=True)
        finally:
            server.terminate()
            server.wait(30)
    result = {"benchmark": "serve_load", "date": time.strftime("%Y-%m-%d"), "index": args.index or "koblex-dev (16,463 passages)",
              "model": "bundled:multilingual-e5-small", "backend": backend, "settings": args.sets, "poison": args.poison,
              "machine": f"{os.cpu_count()} cores, {_cpu_model()}, load generator on the same cores", "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
