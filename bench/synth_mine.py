"""Synthetic data and mining costs on the development corpus (koblex-dev, 16k paragraphs; read from
../shared/bench, only the passages are used, never the benchmark questions or labels).

- Queries generated and kept per minute with each offline generator (title, ict, refs).
- Mining time for 1,000 queries over the 16k corpus, split into BM25, dense and reranker time (the
  reranker row uses the bundled e5-small as an untrained cross-encoder: a cost figure, not quality).
- How the BM25 side grows with the corpus: 16k, 100k and the full legalize-kr paragraph set.
Prints tables and writes bench/results/synth_mine.json.

    .venv/bin/python bench/synth_mine.py
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from _corpora import DATASETS, REPO

SHARED = REPO.parent / "shared" / "corpus"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "synth_mine.json"))
    args = ap.parse_args()

    from lextune.index import IndexBuildConfig, build_index
    from lextune.index.bm25 import BM25Config, BM25Index
    from lextune.index.dense import DenseConfig
    from lextune.index.rerank import RerankConfig
    from lextune.ingest import IngestConfig, ingest, ingest_chunks, read_chunks
    from lextune.mine import MineConfig, mine
    from lextune.models.bundled import bundled_model_dir
    from lextune.synth import SynthConfig, synth

    result: dict = {"benchmark": "synth_mine", "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the statutes as structured chunks (for title/refs), the dev corpus as BEIR passages (for mining)
        ingest([SHARED / "laws"], tmp / "laws")
        gen_rows = {}
        for g in ("title", "ict", "refs"):
            t = time.perf_counter()
            s = synth(tmp / "laws", tmp / f"q-{g}", SynthConfig(generators=[g], dev_fraction=0.0))
            secs = time.perf_counter() - t
            gen_rows[g] = {"generated": s.generated[g], "kept": s.kept[g], "seconds": secs,
                           "generated_per_min": s.generated[g] / secs * 60, "kept_per_min": s.kept[g] / secs * 60}
            print(f"{g:6s} generated {s.generated[g]:6d} kept {s.kept[g]:6d} in {secs:5.1f} s "
                  f"({gen_rows[g]['kept_per_min']:.0f} kept/min)")
        result["generators"] = {"chunks": len(read_chunks(tmp / "laws")), **gen_rows}

        ingest([DATASETS["koblex-dev"] / "corpus.jsonl"], tmp / "kdev", IngestConfig(max_chars=100_000))
        chunks = read_chunks(tmp / "kdev")
        docs = [{"id": c.id, "title": c.title, "text": c.text, "contents": c.contents, "parent_id": c.parent_id}
                for c in chunks]
        build_index(docs, tmp / "kdev-idx", IndexBuildConfig(dense=DenseConfig()), source={"chunks": str(tmp / "kdev")})
        synth(tmp / "kdev", tmp / "q-kdev", SynthConfig(generators=["ict"], max_chunks=args.queries, dev_fraction=0.0))
        synth(tmp / "kdev", tmp / "q-kdev-100", SynthConfig(generators=["ict"], max_chunks=100, dev_fraction=0.0))
        mining = {}
        for name, qdir, cfg in (("bm25+dense, dense scores", "q-kdev", MineConfig()),
                                ("bm25+dense, reranker scores (100 queries)", "q-kdev-100", MineConfig(
                                    scorer="reranker", reranker=RerankConfig(model=str(bundled_model_dir()), k=100)))):
            t = time.perf_counter()
            s = mine(tmp / qdir, tmp / "kdev-idx", tmp / f"train-{len(mining)}.jsonl", cfg)
            wall = time.perf_counter() - t
            mining[name] = {"queries": s.queries, "records": s.records, "wall_s": wall, **s.seconds,
                            "dropped": dict(s.dropped), "candidates": s.candidates}
            print(f"mining {s.queries} queries ({name}): {wall:.0f} s = bm25 {s.seconds['bm25']:.1f} + dense "
                  f"{s.seconds['dense']:.1f} + rerank {s.seconds['rerank']:.1f} s (+ selection)")
        result["mining"] = {"corpus": len(chunks), **mining}

        if not args.skip_scale:
            full, _ = ingest_chunks([SHARED / "legalize-kr.tar.gz"], IngestConfig())
            rng = random.Random(0)
            queries = {str(i): c.text.split("\n")[0][:60] for i, c in enumerate(rng.sample(full, args.queries))}
            growth = {}
            for size in (16_463, 100_000, len(full)):
                sub = full[:size]
                t = time.perf_counter()
                idx = BM25Index(BM25Config()).build([c.id for c in sub], [c.contents for c in sub])
                build = time.perf_counter() - t
                t = time.perf_counter()
                idx.search(queries, 100)
                search = time.perf_counter() - t
                growth[size] = {"build_s": build, "search_1000_s": search}
                print(f"BM25 side at {size:7d} chunks: build {build:6.1f} s, top-100 for {len(queries)} queries {search:5.1f} s")
            result["bm25_growth"] = growth
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
