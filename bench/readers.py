"""Throughput of the document readers (issue 39): pages (or page-equivalents) per second for PDF, DOCX, HWPX,
HWP 5 and HTML, from extraction through ingest's chunking, on documents the benchmark makes itself (the
terms of tests/docfixtures.py repeated; the PDF printed by headless Chromium, one page per repeat).

    .venv/bin/python bench/readers.py [--repeat 40] [--rounds 3] [--out bench/results/readers.json]

A "page" is one repeat of the terms (~560 characters, 5 articles, a page break in the PDF: 2 pages per repeat
there); pages/s = pages / the best of ``rounds`` wall times of ``ingest_chunks`` on the one file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture builders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "readers.json")
    args = ap.parse_args()

    import docfixtures as fx
    from lextune.ingest import extract, ingest_chunks

    tmp = Path(tempfile.mkdtemp(prefix="lextune-readers-"))
    files = {"docx": fx.write_docx(tmp / "terms.docx", args.repeat),
             "hwpx": fx.write_hwpx(tmp / "terms.hwpx", args.repeat),
             "hwp": fx.write_hwp(tmp / "terms.hwp", args.repeat)}
    (tmp / "terms.html").write_text(fx.terms_html(repeat=args.repeat), encoding="utf-8")
    files["html"] = tmp / "terms.html"
    if fx.chromium():
        (tmp / "print").mkdir()
        files["pdf"] = fx.print_pdf(fx.terms_html(repeat=args.repeat, chrome=False), tmp / "print" / "terms.pdf")
    rows = []
    for fmt, path in files.items():
        best, chunks = float("inf"), []
        for _ in range(args.rounds):
            t = time.perf_counter()
            chunks, summary = ingest_chunks([path])
            best = min(best, time.perf_counter() - t)
            assert not summary.errors, summary.errors
        pages = getattr(extract, fmt)(path.read_bytes(), str(path)).pages or args.repeat
        rows.append({"format": fmt, "bytes": path.stat().st_size, "pages": pages, "chunks": len(chunks),
                     "seconds": best, "pages_per_s": pages / best, "chunks_per_s": len(chunks) / best})
    print(f"| format | size (KB) | pages | chunks | best of {args.rounds} (s) | pages/s | chunks/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['format']} | {r['bytes'] / 1024:.0f} | {r['pages']} | {r['chunks']} | {r['seconds']:.3f} | "
              f"{r['pages_per_s']:.0f} | {r['chunks_per_s']:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "rounds": args.rounds, "machine": platform.processor()
                                    or platform.machine(), "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
