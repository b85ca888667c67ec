"""Retrain a finished run's bi-encoder with other settings and score it on the run's held-out synthetic
queries: base versus tuned, dense and hybrid, overall and per query generator (ict, refs, title). How the
demo's recipe was chosen (docs/benchmarks.md, "Demo"); it reuses the run's synth, mine and index stages.

    .venv/bin/python bench/train_variant.py --run lextune-demo --name neg3 \
        --set n_negatives=3 --set batch_size=16 [--max-queries 150]

Writes bench/results/train_variant-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from _corpora import REPO


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="A `lextune run` folder with synth, mine and index stages.")
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="train_biencoder setting KEY=VALUE")
    ap.add_argument("--max-queries", type=int, default=150)
    ap.add_argument("--work", default="/tmp/train_variant")
    ap.add_argument("--reuse", action="store_true", help="Score the model an earlier call trained, do not retrain.")
    args = ap.parse_args()

    from lextune.eval.metrics import evaluate_run
    from lextune.index import LexIndex
    from lextune.index.bm25 import run_top
    from lextune.index.fusion import fuse_runs
    from lextune.models.biencoder import BiEncoder
    from lextune.pipeline.compare import stable_sample
    from lextune.runs import drop_ignored, load_beir
    from lextune.train.biencoder import BiEncoderTrainConfig, train_biencoder

    run = Path(args.run)
    pipeline = yaml.safe_load((run / "pipeline.yaml").read_text(encoding="utf-8"))
    settings = dict(pipeline.get("train_biencoder") or {})
    settings.update({k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.sets)})
    out = Path(args.work) / args.name / "model"
    base_model = pipeline.get("base_model", "bundled:multilingual-e5-small")
    cfg = BiEncoderTrainConfig.model_validate({**settings, "base_model": base_model,
                                               "train_file": str(run / "mine" / "train.jsonl"),
                                               "corpus": str(run / "index"), "output_dir": str(out), "progress": False})
    t0 = time.time()
    if args.reuse and (out / "meta.json").is_file():
        summary = json.loads((out / "meta.json").read_text(encoding="utf-8")).get("summary", {})
        train_s = summary.get("seconds")
    else:
        summary = train_biencoder(cfg)
        train_s = time.time() - t0

    ds = load_beir(run / "synth", split="dev")
    judged = [q for q in ds.queries if ds.qrels.get(q)]
    # The eval stage's sample (stratified by generator) and its rule: a query's own source passage is ignored.
    gens = ds.generators()
    queries = {q: ds.queries[q] for q in sorted(stable_sample(judged, args.max_queries, gens))}
    qrels = {q: ds.qrels[q] for q in queries}
    index = LexIndex.load(run / "index")
    tuned = index.dense_with(BiEncoder(str(out)))
    bm25 = index.bm25.search(queries, 100)
    runs = {"dense-base": index.dense(BiEncoder(base_model)).search(queries, 100), "dense-tuned": tuned.search(queries, 100)}
    runs["hybrid-base"] = run_top(fuse_runs([bm25, runs["dense-base"]]), 100)
    runs["hybrid-tuned"] = run_top(fuse_runs([bm25, runs["dense-tuned"]]), 100)
    runs = {name: drop_ignored(r, ds.ignored()) for name, r in runs.items()}
    rows = {}
    for name, r in runs.items():
        row = {k: float(v) for k, v in evaluate_run(qrels, r, ["ndcg@10", "hit_rate@1"]).items()}
        per = evaluate_run(qrels, r, ["ndcg@10"], per_query=True)["ndcg@10"]
        by_gen: dict[str, list[float]] = defaultdict(list)
        for q, v in per.items():
            by_gen[gens.get(q, "other")].append(v)
        row |= {f"ndcg@10_{g}": float(np.mean(v)) for g, v in sorted(by_gen.items())}
        rows[name] = row
        print(f"{name:13s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))
    result = {"benchmark": "train_variant", "date": time.strftime("%Y-%m-%d"), "run": str(run), "name": args.name,
              "settings": settings, "queries": len(queries), "train_seconds": train_s,
              "train_steps": summary.get("steps"), "rows": rows}
    path = REPO / "bench" / "results" / f"train_variant-{args.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
