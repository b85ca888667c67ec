"""``lextune demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import console, out, setup_logging, styled, user_errors


def demo(
    out_dir: Path = typer.Option(Path("lextune-demo"), "--out", "-o", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="A few training steps only (a smoke run)."),
    show_config: bool = typer.Option(False, "--show-config", help="Print the demo's pipeline.yaml and stop."),
) -> None:
    """The whole workflow offline on the bundled statutes (about 13-14 minutes on 2 CPU cores): synthetic
    queries, mining, fine-tuning of the embedder and a reranker, base vs tuned, the targeted pass, report."""
    setup_logging()
    with user_errors():
        import yaml

        from lextune.cli.run import print_comparison, print_stages
        from lextune.demo import demo_config
        from lextune.pipeline import run_pipeline

        cfg = demo_config(out_dir, quick=quick)
        if show_config:
            out.print(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True, sort_keys=False))
            return
        result = run_pipeline(cfg, progress=lambda stage, msg: console.print(styled(stage, "cyan", f" {msg}"), highlight=False))
    print_stages(result)
    print_comparison(result.comparison)
    targeted = result.stages.get("targeted", {}).get("summary")
    if targeted:
        b, a = targeted["check"]["before"], targeted["check"]["after"]
        out.print(f"targeted pass on the check split ({targeted['check_queries']} queries): nDCG@10 "
                  f"{b['ndcg@10']:.3f} -> {a['ndcg@10']:.3f}, Hit@1 {b['hit_rate@1']:.3f} -> {a['hit_rate@1']:.3f}")
    report = next(iter(Path(out_dir, "eval").rglob("report.html")), None)
    if report:
        out.print(f"report: {report}")
    out.print(f"everything else: {out_dir}/ (manifest.json lists it)")
