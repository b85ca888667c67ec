"""``lextune serve``."""

from __future__ import annotations

from pathlib import Path

import typer

from lextune.cli.common import out, setup_logging, user_errors


def serve_cmd(
    model: str | None = typer.Option(None, "--model", "-m",
                                     help="Embedding model spec (default: the index's model, else the bundled e5)."),
    query_model: str | None = typer.Option(
        None, "--query-model", help="Distilled query encoder of the model (lextune train query-encoder): faster search."),
    reranker: str | None = typer.Option(None, "--reranker", "-r", help="Cross-encoder spec for /v1/rerank."),
    index: Path | None = typer.Option(None, "--index", "-i", help="Index folder for /v1/search."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p",
                                         help="Pipeline YAML /v1/search runs (what `lextune eval -s NAME=FILE` measures)."),
    run: Path | None = typer.Option(None, "--run", help="Serve what this `lextune run` folder recommends "
                                    "(its index and recommended.yaml)."),
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML ServeConfig."),
    overrides: list[str] = typer.Option([], "--set", help="e.g. --set limits.max_inputs=128"),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Serve embeddings (OpenAI-compatible), reranking and search over HTTP. The API key, if any, is read
    from $LEXTUNE_API_KEY (or the env var that api_key_env names)."""
    setup_logging(verbose)
    with user_errors():
        from lextune.config import load_config
        from lextune.serve import ServeConfig, serve

        values = {"reranker": reranker, "query_model": query_model, "index": str(index) if index else None, "host": host, "port": port}
        cfg = load_config(ServeConfig, config, overrides, **values)
        if run is not None:
            from lextune.errors import ConfigError
            from lextune.serve.config import run_settings

            if index is not None or pipeline is not None:
                raise ConfigError("--run serves the run's own index and recommended.yaml: leave out --index and --pipeline")
            cfg = cfg.model_copy(update=run_settings(run))
        if pipeline is not None:
            from lextune.index import PipelineConfig

            cfg = cfg.model_copy(update={"pipeline": load_config(PipelineConfig, pipeline)})
        if model is not None:
            cfg = cfg.model_copy(update={"model": model})
        elif index is not None and config is None and run is None:
            cfg = cfg.model_copy(update={"model": None})  # the index's own model
        out.print(f"lextune serve on http://{cfg.host}:{cfg.port} (docs at /docs)")
        serve(cfg)


def label_cmd(
    index: Path = typer.Option(..., "--index", "-i", help="The index whose passages are judged."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Labels folder: events.jsonl, and the BEIR export."),
    k: int = typer.Option(10, "-k", help="Hits of each system (BM25, dense) pooled per question."),
    dense_model: str | None = typer.Option(None, "--dense-model", help="Dense model for an index without a dense part."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8010, "--port"),
) -> None:
    """A page for judging a few real questions (keys 2/1/0, s skip, u undo); every judgement is saved at once,
    and `export` writes a BEIR folder that `lextune eval --data` and a run's `validation:` read."""
    setup_logging()
    with user_errors():
        from lextune.extras import optional_import
        from lextune.serve.label import create_label_app

        uvicorn = optional_import("uvicorn", "serve", "the labelling page")
        app = create_label_app(index, out_dir, k=k, dense_model=dense_model)
        out.print(f"lextune label on http://{host}:{port} (labels in {out_dir})")
        uvicorn.run(app, host=host, port=port, log_level="warning")
