"""``lextune eval``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import (
    load_pipelines,
    out,
    print_table,
    progress_bar,
    setup_logging,
    styled,
    user_errors,
)


def _split_named(spec: str) -> tuple[str | None, str]:
    if "=" in spec:
        name, value = spec.split("=", 1)
        return name.strip(), value.strip()
    return None, spec


def eval_cmd(
    data: Path = typer.Option(..., "--data", "-d", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (metrics.json, report.html, failures)."),
    queries: str = typer.Option("queries.jsonl", "--queries", help="Query file inside --data."),
    split: str = typer.Option("dev", "--split"),
    run: list[str] = typer.Option([], "--run", help="TREC run file, optionally NAME=path; repeatable."),
    index_dir: Path | None = typer.Option(None, "--index", "-i", help="Index of the dataset's corpus."),
    system: list[str] = typer.Option([], "--system", "-s",
                                     help="NAME=bm25|dense|hybrid|pipeline.yaml over --index; repeatable."),
    k: list[int] = typer.Option([], "-k", help="Cut-offs (default 1 3 5 10 20 100)."),
    failure_rank: int = typer.Option(1, "--failure-rank", help="Queries whose first gold ranks below this fail."),
    report: bool = typer.Option(True, "--report/--no-report"),
    map_model: str | None = typer.Option(None, "--map-model", help="Draw the embedding map with this model."),
) -> None:
    """Evaluate runs or pipelines: metrics, significance, failure notebook, HTML report."""
    setup_logging()
    with user_errors():
        from lextune.errors import ConfigError
        from lextune.eval.evaluate import EvalConfig
        from lextune.eval.run import System, run_evaluation
        from lextune.runs import load_beir, read_trec_run

        ds = load_beir(data, queries_file=queries, split=split)
        if not ds.qrels:
            raise ConfigError(f"{data}/qrels/{split}.tsv is missing or empty")
        systems: list[System] = []
        duplicates: dict[str, int] = {}
        for spec in run:
            name, path = _split_named(spec)
            stats: dict[str, int] = {}
            name = name or Path(path).stem
            systems.append(System(name, read_trec_run(path, stats), {"run_file": str(path)}))
            duplicates[name] = stats.get("duplicates", 0)
        if system:
            if index_dir is None:
                raise ConfigError("--system needs --index (build one with `lextune index build --beir DATA`)")
            from lextune.index import LexIndex

            index = LexIndex.load(index_dir)
            specs = {name or value: value for name, value in (_split_named(spec) for spec in system)}
            if len(specs) != len(system):
                raise ConfigError("each --system needs its own name: -s NAME=bm25|dense|hybrid|pipeline.yaml")
            with progress_bar() as progress:
                pipelines = load_pipelines(index, specs, progress)
                for name, pipe in pipelines.items():
                    ran, trace = pipe.run(ds.queries, max([100, *k]))
                    systems.append(System(name, ran, {"index": str(index_dir), "pipeline": pipe.config.model_dump(
                        mode="json"), "dense_model": index.meta.get("dense_model")}, trace.notes))
        if not systems:
            raise ConfigError("give --run FILE or --index IDX --system NAME=...")
        cfg = EvalConfig(failure_rank=failure_rank, **({"k_values": sorted(set(k))} if k else {}))
        encoder = None
        if map_model:
            from lextune.models.biencoder import BiEncoder

            encoder = BiEncoder(map_model)
        result = run_evaluation(ds, systems, out_dir, config=cfg, queries_file=queries, split=split,
                                duplicates=duplicates, report=report, map_encoder=encoder)
    shown = ["ndcg@10", "recall@10", "recall@100", "mrr@10", "hit_rate@1", "map@10", "precision@10"]
    shown = [m for m in shown if m in result.overall[result.systems[0]]]
    first = result.systems[0]
    p_first = result.p_vs_first(shown[0])
    rows = []
    for s in result.systems:
        w = result.win_tie_loss[s]
        p = p_first.get(s)
        rows.append([s, *[f"{result.overall[s][m]:.3f}" + ("*" if result.significance.get(s, {}).get(m) else "")
                          for m in shown], f"{w['win']}/{w['tie']}/{w['loss']}",
                     "" if s == first else "n/a" if p is None else f"{p:.3g}"])
    print_table(f"{data.name} / {queries}: {len(result.queries)} judged queries",
                ["system", *shown, "W/T/L", f"p ({shown[0]})"], rows)
    out.print(f"p: paired two-sided t-test against {first} over per-query scores; *: significantly above a system "
              f"(p < {cfg.max_p})", soft_wrap=True)
    for w in result.inputs.warnings():
        out.print(styled("note:", "yellow", f" {w}"))
    out.print(f"wrote {out_dir}/metrics.json, per_query.jsonl, failures-*.md" + (", report.html" if report else ""))
