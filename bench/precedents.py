"""Court decisions as queries (issue 32): how many 판시사항/판결요지 items resolve into a corpus, and whether
held-out precedent queries order retrieval systems the way real questions do.

``--counts``: the precedents and holdings generators against (a) 형법 + 민법 from legalize-kr, (b) the
koblex-dev corpus, (c) the koblex-fulllaw-dev corpus, (d) the whole legalize-kr ingest: items, queries,
citations resolved and dropped by reason, (item, passage) pairs.
``--trust``: on koblex-dev (its own corpus, base model, embeddings cached in $LEXTUNE_HOME), nDCG@10 of BM25,
base dense and base hybrid on (i) held-out precedent queries, (ii) the offline generators' validation
queries, (iii) the benchmark's real questions (both query files).

    .venv/bin/python bench/precedents.py --counts --trust
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tarfile
import tempfile
import time
from pathlib import Path

from _corpora import DATASETS, REPO, passage_text

SHARED = REPO.parent / "shared" / "corpus"
PRECEDENTS = SHARED / "precedents.jsonl.gz"
TREE = SHARED / "legalize-kr.tar.gz"
METRICS = ["ndcg@10", "recall@100", "hit_rate@1"]


def _beir_chunks(folder: Path):
    from lextune.ingest import IngestConfig, ingest_chunks

    chunks, _ = ingest_chunks([folder / "corpus.jsonl"], IngestConfig(max_chars=1_000_000))
    return chunks


def _corpora(tmp: Path):
    from lextune.ingest import ingest_chunks

    with tarfile.open(TREE) as tar:
        for name in ("kr/형법/법률.md", "kr/민법/법률.md"):
            member = tar.getmember(name)
            target = tmp / "a" / name.split("/")[1]
            target.mkdir(parents=True, exist_ok=True)
            (target / "법률.md").write_bytes(tar.extractfile(member).read())
    yield "형법 + 민법 (legalize-kr)", ingest_chunks([tmp / "a"])[0]
    yield "koblex-dev corpus", _beir_chunks(DATASETS["koblex-dev"])
    yield "koblex-fulllaw-dev corpus", _beir_chunks(DATASETS["koblex-fulllaw-dev"])
    yield "whole legalize-kr", ingest_chunks([TREE])[0]


def counts() -> dict:
    from lextune.synth.precedents import PrecedentStats, precedent_item_queries

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, chunks in _corpora(Path(tmp)):
            out[name] = {"chunks": len(chunks)}
            for kind in ("precedents", "holdings"):
                t = time.perf_counter()
                stats = PrecedentStats()
                qs = list(precedent_item_queries(chunks, kind, [PRECEDENTS], stats))
                d = stats.to_dict()
                d["seconds"] = time.perf_counter() - t
                d["positives_per_query_median"] = sorted(len(q.positives) for q in qs)[len(qs) // 2] if qs else 0
                d["queries_single_positive"] = sum(len(q.positives) == 1 for q in qs)
                d["queries_case_specific"] = sum(q.metadata["case_specific"] for q in qs)
                d["queries_over_300_chars"] = sum(len(q.text) > 300 for q in qs)
                out[name][kind] = d
                dr = d["dropped"]
                print(f"{name:28s} {kind:10s} items {d['items']:6d} queries {d['queries']:6d} "
                      f"pairs {d['item_passage_pairs']:6d} cites {d['resolved']:6d}/{d['citations']:6d} | "
                      + " ".join(f"{k} {v}" for k, v in dr.items()) + f" | {d['seconds']:.0f} s")
            del chunks
    return out


def _order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda s: -scores[s])


def trust(max_queries: int, seed: int) -> dict:
    from scipy.stats import kendalltau, ttest_rel

    from lextune.eval import evaluate_run
    from lextune.index.bm25 import BM25Config, BM25Index
    from lextune.index.dense import DenseConfig, DenseIndex
    from lextune.index.fusion import FusionConfig, fuse_runs
    from lextune.index.tokenize import TokenizerConfig
    from lextune.ingest import IngestConfig, ingest
    from lextune.runs import load_beir
    from lextune.synth.pipeline import SynthConfig, synth

    folder = DATASETS["koblex-dev"]
    ds = load_beir(folder)
    ids = list(ds.corpus)
    texts = [passage_text(ds.corpus[i]) for i in ids]
    t = time.perf_counter()
    bm25 = BM25Index(BM25Config()).build(ids, texts)
    bm25_ws = BM25Index(BM25Config(tokenizer=TokenizerConfig(kind="whitespace"))).build(ids, texts)
    dense = DenseIndex(DenseConfig()).build(ids, texts)  # cached by text hash (bench/retrieval.py warms it)
    print(f"indexes: {time.perf_counter() - t:.0f} s")

    sets: dict[str, tuple[dict[str, str], dict[str, dict[str, int]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ingest([folder / "corpus.jsonl"], Path(tmp) / "chunks", IngestConfig(max_chars=1_000_000))
        for name, gens in (("precedents", ["precedents"]), ("holdings", ["holdings"]),
                           ("offline (title+ict+refs)", ["title", "ict", "refs"]), ("question", ["question"])):
            summary = synth(Path(tmp) / "chunks", Path(tmp) / name, SynthConfig(
                generators=gens, precedents=[str(PRECEDENTS)], seed=seed))
            rows = [json.loads(x) for x in (Path(tmp) / name / "queries.jsonl").read_text().splitlines()]
            dev = [r for r in rows if r["split"] == "dev"]
            random.Random(seed).shuffle(dev)
            dev = dev[:max_queries]
            sets[f"{name}, dev split"] = ({r["_id"]: r["text"] for r in dev},
                                          {r["_id"]: {p: 1 for p in r["positives"]} for r in dev})
            print(f"{name}: kept {dict(summary.kept)}, dev {summary.dev_queries}, evaluated {len(dev)}")
    for qfile in ("queries.jsonl", "queries_bg.jsonl"):
        real = load_beir(folder, queries_file=qfile)
        sets[f"real: {qfile}"] = (real.queries, real.qrels)

    result: dict = {}
    for name, (queries, qrels) in sets.items():
        t = time.perf_counter()
        runs = {"bm25": bm25.search(queries, 100), "dense (base)": dense.search(queries, 100)}
        runs["hybrid (base, rrf)"] = fuse_runs([runs["bm25"], runs["dense (base)"]], FusionConfig(method="rrf", rrf_k=60))
        # more systems, so that the order of a query set can be compared with more than three points
        runs["bm25 whitespace"] = bm25_ws.search(queries, 100)
        runs["hybrid rrf k=10"] = fuse_runs([runs["bm25"], runs["dense (base)"]], FusionConfig(method="rrf", rrf_k=10))
        for w in (0.3, 0.5, 0.7):
            runs[f"hybrid wsum dense {w}"] = fuse_runs([runs["bm25"], runs["dense (base)"]],
                                                      FusionConfig(method="wsum", weights=[1 - w, w]))
        table = {s: evaluate_run(qrels, r, METRICS) for s, r in runs.items()}
        per_query = {s: evaluate_run(qrels, r, ["ndcg@10"], per_query=True)["ndcg@10"] for s, r in
                     (("bm25", runs["bm25"]), ("hybrid", runs["hybrid (base, rrf)"]), ("dense", runs["dense (base)"]))}
        tests = {}
        for a, b in (("hybrid", "bm25"), ("dense", "bm25"), ("hybrid", "dense")):
            qa, qb = per_query[a], per_query[b]
            common = sorted(set(qa) & set(qb))
            x, y = [qa[q] for q in common], [qb[q] for q in common]
            diff = sum(x) / len(x) - sum(y) / len(y)
            tests[f"{a} - {b}"] = {"diff": diff, "p": float(ttest_rel(x, y).pvalue)}
        result[name] = {"queries": len(queries), "metrics": table, "paired": tests,
                        "seconds": time.perf_counter() - t}
        print(f"{name:34s} n={len(queries):5d} " + "  ".join(
            f"{s} {m['ndcg@10']:.3f}" for s, m in table.items()))
        print("    " + "  ".join(f"{k} {v['diff']:+.3f} (p {v['p']:.2g})" for k, v in tests.items()))
    real_order = {q: [result[q]["metrics"][s]["ndcg@10"] for s in result[q]["metrics"]]
                  for q in result if q.startswith("real")}
    for name in result:
        scores = [result[name]["metrics"][s]["ndcg@10"] for s in result[name]["metrics"]]
        result[name]["order"] = _order({s: result[name]["metrics"][s]["ndcg@10"] for s in result[name]["metrics"]})
        result[name]["kendall_tau_vs_real"] = {q: float(kendalltau(scores, ref).statistic)
                                               for q, ref in real_order.items()}
        print(f"  order {' > '.join(result[name]['order'])}; tau vs real: "
              + ", ".join(f"{q} {v:+.2f}" for q, v in result[name]["kendall_tau_vs_real"].items()))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", action="store_true")
    ap.add_argument("--trust", action="store_true")
    ap.add_argument("--max-queries", type=int, default=1000, help="Validation queries evaluated per set (sampled).")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "precedents.json"))
    args = ap.parse_args()
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.is_file() else {"benchmark": "precedents"}
    result["date"] = time.strftime("%Y-%m-%d")
    if args.counts:
        result["counts"] = counts()
    if args.trust:
        result["trust"] = trust(args.max_queries, args.seed)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
