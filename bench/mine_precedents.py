"""Mining precedent queries over koblex-dev (issue 35, first part): how many queries keep hard negatives.

Precedent queries (판시사항 items resolved into koblex-dev's own corpus) are vague and have several
positives, so their positives are often not ranked first. With the old false-negative rule (drop a
candidate above 0.95 x the *weakest* positive's cosine) most lost every candidate and were skipped. This
script mines a fixed sample of them with the code of the checkout it runs in and prints what came out.

    .venv/bin/python bench/mine_precedents.py [--queries 5000] [--out bench/results/mine_precedents.json]

Needs koblex-dev's passage embeddings (cached by bench/retrieval.py) or ~14 min to encode them.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

from _corpora import DATASETS, REPO

PRECEDENTS = REPO.parent / "shared" / "corpus" / "precedents.jsonl.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "lextune-mine-precedents"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "mine_precedents.json"))
    args = ap.parse_args()

    from lextune.index import IndexBuildConfig, build_index, docs_from_beir
    from lextune.index.dense import DenseConfig
    from lextune.ingest import IngestConfig, ingest
    from lextune.mine import MineConfig, mine
    from lextune.runs import load_beir
    from lextune.synth.pipeline import SynthConfig, synth

    work = Path(args.work)
    folder = DATASETS["koblex-dev"]
    if not (work / "idx" / "meta.json").is_file():
        build_index(docs_from_beir(load_beir(folder).corpus), work / "idx", IndexBuildConfig(dense=DenseConfig()))
    if not (work / "sample" / "queries.jsonl").is_file():
        ingest([folder / "corpus.jsonl"], work / "chunks", IngestConfig(max_chars=1_000_000))
        synth(work / "chunks", work / "synth", SynthConfig(generators=["precedents"], precedents=[str(PRECEDENTS)],
                                                           dev_fraction=0.0))
        rows = [json.loads(x) for x in (work / "synth" / "queries.jsonl").read_text().splitlines()]
        rows = sorted(random.Random(13).sample(rows, min(args.queries, len(rows))), key=lambda r: r["_id"])
        (work / "sample" / "qrels").mkdir(parents=True, exist_ok=True)
        (work / "sample" / "queries.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        (work / "sample" / "qrels" / "train.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{r['_id']}\t{p}\t1\n" for r in rows for p in r["positives"]))
    t = time.perf_counter()
    out = work / f"train-{args.label.replace(' ', '_')}.jsonl"
    out.unlink(missing_ok=True)
    summary = mine(work / "sample", work / "idx", out, MineConfig(n_negatives=3))
    wall = time.perf_counter() - t
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    kinds = Counter(k for r in recs for k in r.get("neg_kinds", []))
    hard = Counter(sum(k in ("hard", "deeper") for k in r.get("neg_kinds", ["hard"] * len(r["neg"]))) for r in recs)
    d = summary.to_dict()
    row = {"label": args.label, "queries": d["queries"], "records": d["records"],
           "skipped_no_negative": d["skipped_no_negative"], "negative_kinds": dict(kinds),
           "records_by_hard_negatives": {str(k): v for k, v in sorted(hard.items())},
           "dropped": d["dropped"], "pos_score": d["pos_score"], "neg_score": d["neg_score"], "wall_s": wall}
    print(json.dumps(row, ensure_ascii=False, indent=1))
    path = Path(args.out)
    result = json.loads(path.read_text()) if path.is_file() else {"benchmark": "mine_precedents", "runs": []}
    result["date"] = time.strftime("%Y-%m-%d")
    result["runs"] = [r for r in result["runs"] if r["label"] != args.label] + [row]
    path.write_text(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
