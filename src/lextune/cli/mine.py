"""``lextune mine``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import out, progress_bar, setup_logging, user_errors


def mine_cmd(
    queries: Path = typer.Option(..., "--queries", "-q", help="A synth output folder (queries.jsonl, qrels/)."),
    index_dir: Path = typer.Option(..., "--index", "-i", help="Index over the same chunks (BM25 and/or dense)."),
    out_path: Path = typer.Option(..., "--out", "-o", help="train.jsonl to write."),
    split: str = typer.Option("train", "--split"),
    refs: Path | None = typer.Option(None, "--refs", help="refs.jsonl of the ingest (default: beside the chunks)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML MineConfig (or its 'mine' section)."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set n_negatives=3 --set max_score_ratio=0.9"),
    max_queries: int | None = typer.Option(None, "--max-queries", help="Mine a sample of this many queries, "
                                           "taking the query generators in turn."),
) -> None:
    """Mine hard negatives (BM25 + dense pool) with false-negative control."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.mine import MineConfig, mine

        cfg = load_config(MineConfig, config, overrides, max_queries=max_queries)
        with progress_bar("mining queries") as progress:
            summary = mine(queries, index_dir, out_path, cfg, refs=refs, split=split, progress=progress)
    d = summary.to_dict()
    out.print(f"{summary.records} training records -> {out_path} ({summary.resumed} resumed, "
              f"{summary.skipped_no_negative} queries without a usable negative)")
    out.print(f"candidates {summary.candidates}; dropped: {d['dropped']}")
    if summary.sampled_out:
        out.print(f"{summary.sampled_out} queries left out by --max-queries")
    for g, counts in d["hard_negatives_per_generator"].items():
        out.print(f"{g}: queries by number of hard negatives {counts}")
    if d["filled"]:
        out.print(f"queries topped up with deeper or random negatives: {d['filled']}")
    if d["pos_score"]:
        out.print(f"scores: positives mean {d['pos_score']['mean']:.3f} (p50 {d['pos_score']['p50']:.3f}), "
                  f"negatives mean {d['neg_score'].get('mean', float('nan')):.3f} (p50 {d['neg_score'].get('p50', float('nan')):.3f})")
    secs = summary.seconds
    out.print(f"time: bm25 {secs['bm25']:.1f} s, dense {secs['dense']:.1f} s, rerank {secs['rerank']:.1f} s, total {secs['total']:.1f} s")
