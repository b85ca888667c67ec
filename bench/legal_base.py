"""The Korean-legal base model (issue 35) against the bundled base, on real questions and held-out decisions.

On koblex-dev (its own corpus): BM25, base dense/hybrid and legal dense/hybrid (RRF k=60) on both query
files and on precedent queries from decisions the legal model's run held out (its synth dev split), with
nDCG@10, Recall@100, Hit@1 and paired t-tests. The real questions are also reported in two groups: those
with a gold paragraph that some court decision cites (a precedent item resolves to it) and those without
(an evaluation breakdown only; the benchmark's labels chose nothing).

    .venv/bin/python bench/legal_base.py --run /tmp/legal-run [--model bundled:lextune-legal-ko-small]

Passage vectors of both models go to lextune's embedding cache as they are made (a killed run continues).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text

PRECEDENTS = REPO.parent / "shared" / "corpus" / "precedents.jsonl.gz"
METRICS = ["ndcg@10", "recall@100", "hit_rate@1"]
SYSTEMS = ["bm25", "dense-base", "hybrid-base", "dense-legal", "hybrid-legal"]
TESTS = [("dense-legal", "dense-base"), ("hybrid-legal", "hybrid-base"), ("dense-legal", "bm25"),
         ("hybrid-legal", "bm25")]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _precedent_rows(folder: Path) -> list[dict]:
    """Every precedent item query that resolves into the dataset's corpus (no split: dev_fraction 0)."""
    from lextune.ingest import IngestConfig, ingest
    from lextune.synth.pipeline import SynthConfig, synth

    with tempfile.TemporaryDirectory() as tmp:
        ingest([folder / "corpus.jsonl"], Path(tmp) / "chunks", IngestConfig(max_chars=1_000_000))
        synth(Path(tmp) / "chunks", Path(tmp) / "q", SynthConfig(generators=["precedents"], precedents=[str(PRECEDENTS)],
                                                                dev_fraction=0.0, max_chars=400))
        return [json.loads(x) for x in (Path(tmp) / "q" / "queries.jsonl").read_text(encoding="utf-8").splitlines()]


def _held_out_decisions(run: Path) -> tuple[set[str], set[str]]:
    """Decisions of the legal run's precedent queries: (held out = dev split, trained on = train split)."""
    dev, train = set(), set()
    with open(run / "synth" / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("generator") == "precedents":
                (dev if r["split"] == "dev" else train).add(r["source_doc"])
    return dev, train - dev


def _table(qrels, runs, per_query_tests: bool = True) -> dict:
    from scipy.stats import ttest_rel

    from lextune.eval import evaluate_run

    qrels = {q: g for q, g in qrels.items() if g}
    out: dict = {"queries": len(qrels), "systems": {s: evaluate_run(qrels, runs[s], METRICS) for s in SYSTEMS}}
    if per_query_tests and len(qrels) > 1:
        pq = {s: evaluate_run(qrels, runs[s], ["ndcg@10"], per_query=True)["ndcg@10"] for s in SYSTEMS}
        out["tests"] = {}
        for a, b in TESTS:
            common = sorted(set(pq[a]) & set(pq[b]))
            x, y = [pq[a][q] for q in common], [pq[b][q] for q in common]
            p = float(ttest_rel(x, y).pvalue) if any(u != v for u, v in zip(x, y, strict=True)) else 1.0
            out["tests"][f"{a} - {b}"] = {"diff": sum(x) / len(x) - sum(y) / len(y), "p": p}
    return out


def _print(name: str, t: dict) -> None:
    print(f"\n{name} ({t['queries']} queries)")
    print(f"{'system':14s}" + "".join(f"{m:>12s}" for m in METRICS))
    for s, m in t["systems"].items():
        print(f"{s:14s}" + "".join(f"{m[x]:12.3f}" for x in METRICS))
    for k, v in t.get("tests", {}).items():
        print(f"  {k:28s} {v['diff']:+.3f} nDCG@10 (p {v['p']:.2g})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bundled:lextune-legal-ko-small")
    ap.add_argument("--base", default="bundled:multilingual-e5-small")
    ap.add_argument("--run", type=Path, required=True, help="The run that trained the model (its held-out decisions).")
    ap.add_argument("--dataset", default="koblex-dev", choices=list(DATASETS))
    ap.add_argument("--held-out", type=int, default=600, help="Held-out precedent queries evaluated (a stable sample).")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "legal_base.json")
    args = ap.parse_args()

    from lextune.index.bm25 import BM25Config, BM25Index, run_top
    from lextune.index.dense import DenseConfig, DenseIndex
    from lextune.index.fusion import FusionConfig, fuse_runs
    from lextune.runs import load_beir

    folder = DATASETS[args.dataset]
    ds = load_beir(folder)
    ids = list(ds.corpus)
    texts = [passage_text(ds.corpus[i]) for i in ids]
    result: dict = {"benchmark": "legal_base", "date": time.strftime("%Y-%m-%d"), "dataset": args.dataset,
                    "model": args.model, "base": args.base, "passages": len(ids), "seconds": {}, "sets": {}}
    t = time.perf_counter()
    bm25 = BM25Index(BM25Config()).build(ids, texts)
    result["seconds"]["bm25 index"] = time.perf_counter() - t
    dense = {}
    for label, spec in (("base", args.base), ("legal", args.model)):
        t = time.perf_counter()
        dense[label] = DenseIndex(DenseConfig(model=spec)).build(ids, texts, progress=lambda d, n, lb=label, t0=t: print(
            f"{lb}: {d}/{n} passages ({time.perf_counter() - t0:.0f} s)", flush=True))
        result["seconds"][f"{label} encoding (cache reused where present)"] = time.perf_counter() - t
        result[f"{label}_fingerprint"] = dense[label].encoder.fingerprint()
    t = time.perf_counter()
    rows = _precedent_rows(folder)
    result["seconds"]["precedent queries"] = time.perf_counter() - t
    cited = {p for r in rows for p in r["positives"]}
    held, trained = _held_out_decisions(args.run)
    held_rows = [r for r in rows if r["source_doc"] in held]
    random.Random(13).shuffle(held_rows)
    held_rows = held_rows[: args.held_out]
    result["cited_passages"] = len(cited)
    result["held_out_decisions"] = {"in run": len(held), "resolving here": len({r["source_doc"] for r in held_rows}),
                                    "queries": len(held_rows), "trained decisions": len(trained)}

    sets: dict[str, tuple[dict, dict]] = {}
    for qfile in ("queries.jsonl", "queries_bg.jsonl"):
        real = load_beir(folder, queries_file=qfile)
        queries = {q: x for q, x in real.queries.items() if real.qrels.get(q)}
        sets[qfile] = (queries, {q: real.qrels[q] for q in queries})
    sets["held-out decisions"] = ({r["_id"]: r["text"] for r in held_rows},
                                  {r["_id"]: {p: 1 for p in r["positives"]} for r in held_rows})
    fusion = FusionConfig(method="rrf", rrf_k=60)
    for name, (queries, qrels) in sets.items():
        t = time.perf_counter()
        runs = {"bm25": bm25.search(queries, 100)}
        for label in ("base", "legal"):
            runs[f"dense-{label}"] = dense[label].search(queries, 100)
            runs[f"hybrid-{label}"] = run_top(fuse_runs([runs["bm25"], runs[f"dense-{label}"]], fusion), 100)
        table = _table(qrels, runs)
        result["sets"][name] = table
        _print(f"{args.dataset} / {name}", table)
        if name != "held-out decisions":
            for group, keep in (("gold cited by a decision", True), ("gold never cited", False)):
                sub = {q: g for q, g in qrels.items() if bool(set(g) & cited) == keep}
                gt = _table(sub, runs)
                result["sets"][f"{name} / {group}"] = gt
                _print(f"{args.dataset} / {name} / {group}", gt)
        result["seconds"][f"search + eval {name}"] = time.perf_counter() - t
    result["peak_memory_gb"] = _peak_gb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nseconds: {json.dumps(result['seconds'])}\npeak memory {result['peak_memory_gb']:.1f} GB\nwrote {args.out}")


if __name__ == "__main__":
    main()
