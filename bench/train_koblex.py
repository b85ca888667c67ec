"""Fine-tuning proof on the development corpora (issue 7/8): `lextune run configs/koblex-dev.yaml`.

Trains only on synthetic queries made from koblex-dev's passages by the offline generators (the
benchmark questions and labels are never used for training or for choosing settings), then compares
BM25, base dense, base hybrid, tuned dense, tuned hybrid and tuned hybrid + the trained reranker on the
benchmark questions of koblex-dev and koblex-fulllaw-dev. Reuses the run folder's cached stages.
Prints the comparison and the training costs; writes bench/results/train_koblex.json.

    .venv/bin/python bench/train_koblex.py [--config configs/koblex-dev.yaml] [--from STAGE] [--until STAGE]
                                           [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _corpora import REPO


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(REPO / "configs" / "koblex-dev.yaml"))
    ap.add_argument("--from", dest="from_stage", default=None)
    ap.add_argument("--until", default=None)
    ap.add_argument("--run-dir", default=None, help="Overrides run_dir of the config.")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "train_koblex.json"))
    args = ap.parse_args()

    from lextune.config import load_config
    from lextune.pipeline import RunConfig, run_pipeline
    from lextune.pipeline.compare import comparison_markdown

    cfg = load_config(RunConfig, args.config)
    if args.run_dir:
        cfg = cfg.model_copy(update={"run_dir": args.run_dir})
    t = time.perf_counter()
    result = run_pipeline(cfg, from_stage=args.from_stage, until=args.until, progress=lambda s, m: print(f"[{s}] {m}", flush=True))
    wall = time.perf_counter() - t
    stages = {s: {"status": r["status"], "seconds": r.get("seconds")} for s, r in result.stages.items()}
    train = {}
    for s in ("train_biencoder", "train_reranker"):
        summ = (result.stages.get(s) or {}).get("summary") or {}
        train[s] = {k: summ.get(k) for k in ("examples", "rows", "steps", "seconds", "samples_per_second",
                                             "peak_rss_gb", "train_loss", "validation")}
    print(comparison_markdown(result.comparison))
    for s, v in train.items():
        print(f"{s}: {v['steps']} steps in {v['seconds'] or 0:.0f} s, {v['samples_per_second']} samples/s, "
              f"peak RSS {v['peak_rss_gb'] or 0:.1f} GB")
    out = {"benchmark": "train_koblex", "date": time.strftime("%Y-%m-%d"), "config": cfg.model_dump(mode="json"),
           "wall_s_this_call": wall, "stages": stages, "training": train, "comparison": result.comparison,
           "targeted": (result.stages.get("targeted") or {}).get("summary")}
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
