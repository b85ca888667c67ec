"""Cross-encoder scoring cost: pairs per second of a reranker on (query, statute paragraph) pairs, and
what that implies for reranker-scored mining (queries x candidates). The bundled e5-small stands in as an
untrained cross-encoder: a cost figure, not a quality one. Writes bench/results/rerank_cost.json.

    .venv/bin/python bench/rerank_cost.py [--pairs 512]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "rerank_cost.json"))
    args = ap.parse_args()

    from lextune.index.rerank import RerankConfig, Reranker
    from lextune.models.bundled import bundled_model_dir
    from lextune.runs import load_beir

    ds = load_beir(DATASETS["koblex-dev"])
    rng = random.Random(0)
    docs = list(ds.corpus.values())
    pairs = []
    for _ in range(args.pairs):
        q, p = rng.choice(docs), rng.choice(docs)
        pairs.append((q["text"][:60], passage_text(p)))
    rr = Reranker(RerankConfig(model=str(bundled_model_dir()), max_length=args.max_length), device="cpu")
    rr.score(pairs[:16])
    t = time.perf_counter()
    rr.score(pairs)
    secs = time.perf_counter() - t
    rate = len(pairs) / secs
    per_1000 = 1000 * 100 / rate
    print(f"{len(pairs)} pairs in {secs:.1f} s: {rate:.1f} pairs/s; reranker-scored mining of 1,000 queries x "
          f"100 candidates = {per_1000 / 60:.0f} min of scoring")
    out = {"benchmark": "rerank_cost", "date": time.strftime("%Y-%m-%d"), "pairs": len(pairs), "seconds": secs,
           "pairs_per_s": rate, "max_length": args.max_length, "mining_1000x100_scoring_s": per_1000}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
