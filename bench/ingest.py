"""Ingest benchmarks: the whole legalize-kr tree (coverage, speed, memory, references), and the
agreement of the JSON and Markdown readers on the 49 statutes of ../shared/corpus/laws.
Prints tables and writes bench/results/ingest.json.

    .venv/bin/python bench/ingest.py
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", default=str(SHARED / "legalize-kr.tar.gz"))
    ap.add_argument("--laws", default=str(SHARED / "laws"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "ingest.json"))
    args = ap.parse_args()

    from lextune.ingest import IngestConfig, ingest
    from lextune.ingest.parity import json_markdown_parity

    t = time.perf_counter()
    parity = json_markdown_parity(args.laws, args.tree)
    parity_s = time.perf_counter() - t
    same = [r for r in parity.laws if r.same_version]
    print(f"JSON vs Markdown, {len(parity.laws)} laws ({len(same)} with the same effective date), {parity_s:.0f} s")
    print(f"  units agreeing, same-version laws: {parity.share(same_version_only=True):.4f} "
          f"({sum(r.same for r in same)}/{sum(r.units for r in same)})")
    print(f"  units agreeing, all laws:          {parity.share(same_version_only=False):.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = ingest([args.tree], Path(tmp) / "out", IngestConfig())
        wall = time.perf_counter() - t
        size = (Path(tmp) / "out" / "chunks.jsonl").stat().st_size
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = summary.to_dict()
    print(f"\nlegalize-kr tree: {summary.files} files in {wall:.0f} s, peak RSS {peak_mb:.0f} MB")
    print(f"  documents {dict(summary.documents)}")
    print(f"  articles {summary.articles}, chunks {summary.total_chunks} {dict(summary.chunks)}")
    print(f"  errors {len(summary.errors)}; references resolved {summary.citations_resolved}/{summary.citations} "
          f"({d['ref_share_resolved']:.1%}); edges {summary.refs}")
    result = {
        "benchmark": "ingest", "date": time.strftime("%Y-%m-%d"),
        "parity": {"laws": len(parity.laws), "same_version_laws": len(same), "missing": parity.missing,
                   "share_same_version": parity.share(same_version_only=True),
                   "share_all": parity.share(same_version_only=False),
                   "per_law": [vars(r) for r in parity.laws]},
        "tree": {"wall_s": wall, "peak_rss_mb": peak_mb, "chunks_jsonl_bytes": size, **d},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
