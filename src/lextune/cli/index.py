"""``lextune index build`` and ``lextune search``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from lextune.cli.common import out, progress_bar, ray_config, setup_logging, styled, user_errors

app = typer.Typer(help="Build retrieval indexes (BM25 and/or dense).", no_args_is_help=True)


@app.command("build")
def build(
    chunks: Path | None = typer.Option(None, "--chunks", help="An ingest output folder (chunks.jsonl)."),
    beir: Path | None = typer.Option(None, "--beir", help="Or a BEIR folder (corpus.jsonl: title + text)."),
    out_dir: Path = typer.Option(..., "--out", "-o"),
    bm25: bool = typer.Option(True, "--bm25/--no-bm25"),
    dense: str | None = typer.Option(None, "--dense", help="Model spec for a dense part."),
    tokenizer: str = typer.Option("kiwi", "--tokenizer", help="BM25 tokenizer: kiwi or whitespace."),
    index_type: str = typer.Option("flat", "--index-type", help="flat, hnsw, ivf, or auto (HNSW above 200k chunks)."),
    vector_store: str = typer.Option(
        "faiss", "--vector-store", help="Where the dense vectors live: faiss, milvus (Milvus Lite inside the index "
        "folder) or milvus:URI (a Milvus server, e.g. milvus:http://localhost:19530)."),
    ray: str | None = typer.Option(None, "--ray", help="Encode on Ray: 'local' (a cluster started for the job), "
                                   "'auto' or an address (ray://host:10001)."),
    ray_workers: int = typer.Option(2, "--ray-workers", help="Encoder actors on Ray."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML IndexBuildConfig."),
    overrides: list[str] = typer.Option([], "--set"),
) -> None:
    """Index chunks for search."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.index import IndexBuildConfig, build_index

        values: dict = {}
        if config is None:
            values["bm25"] = {"tokenizer": {"kind": tokenizer}} if bm25 else None
            on_ray = ray_config(ray, ray_workers)
            values["dense"] = {"model": dense, "index_type": index_type, "vector_store": vector_store,
                               "ray": on_ray.model_dump() if on_ray else None} if dense else None
        cfg = load_config(IndexBuildConfig, config, overrides)
        if config is None:
            cfg = IndexBuildConfig.model_validate(values | {k: v for k, v in cfg.model_dump().items() if k not in values})
        docs, links, source = _index_input(chunks, beir)
        with progress_bar(enabled=cfg.dense is not None) as progress:
            index = build_index(docs, out_dir, cfg, source=source, progress=progress, links=links)
    out.print(f"indexed {len(index.docs)} documents -> {out_dir} ({', '.join(index.parts)})")


@app.command("add")
def add(
    index_dir: Path = typer.Argument(..., help="The index folder to update."),
    chunks: Path | None = typer.Option(None, "--chunks", help="An ingest output folder (chunks.jsonl) to add."),
    beir: Path | None = typer.Option(None, "--beir", help="Or a BEIR folder (corpus.jsonl)."),
    full: bool = typer.Option(False, "--full", help="The input is the whole corpus: delete every chunk it lacks "
                              "(default: only the missing chunks of the documents it holds)."),
) -> None:
    """Upsert new and changed chunks by id and delete removed ones; only those are encoded."""
    setup_logging()
    with user_errors():
        from lextune.index.update import update_index

        docs, links, source = _index_input(chunks, beir)
        with progress_bar() as progress:
            plan = update_index(index_dir, docs, links=links, full=full, source=source, progress=progress)
    out.print(f"{index_dir}: {len(plan.added)} added, {len(plan.changed)} changed, {len(plan.removed)} removed, "
              f"{plan.unchanged} unchanged")


def _index_input(chunks: Path | None, beir: Path | None) -> tuple[list[dict], list, dict]:
    """Index input (documents, citations, where they came from) from an ingest folder or a BEIR corpus."""
    from lextune.errors import ConfigError
    from lextune.ingest.refs import beir_chunks, linked_docs

    if (chunks is None) == (beir is None):
        raise ConfigError("give exactly one of --chunks DIR or --beir DIR")
    if chunks is not None:
        from lextune.ingest import read_chunks

        parsed = read_chunks(chunks)
        source = {"chunks": str(chunks)}
    else:
        from lextune.runs import load_beir

        parsed = beir_chunks(load_beir(beir).corpus)
        source = {"beir": str(beir)}
    docs, links = linked_docs(parsed)
    return docs, links, source


def search(
    query: str | None = typer.Argument(None, help="A question (or use --queries FILE)."),
    index_dir: Path = typer.Option(..., "--index", "-i"),
    k: int = typer.Option(10, "-k"),
    mode: str | None = typer.Option(None, "--mode", help="bm25, dense or hybrid (default: all parts of the index)."),
    rerank: str | None = typer.Option(None, "--rerank", help="Cross-encoder model spec."),
    pipeline: Path | None = typer.Option(None, "--pipeline", "-p", help="YAML PipelineConfig."),
    queries: Path | None = typer.Option(None, "--queries", help="JSONL queries (_id/id and text) for batch search."),
    run_out: Path | None = typer.Option(None, "--run-out", help="Write a TREC run file here."),
) -> None:
    """Search an index: a readable table for one question, a TREC run for a queries file."""
    setup_logging()
    with user_errors():
        from lextune.config import load_config
        from lextune.errors import ConfigError
        from lextune.index import LexIndex, PipelineConfig, PipelineResources, build_pipeline
        from lextune.index.pipeline import PipelineRerank

        index = LexIndex.load(index_dir)
        cfg = load_config(PipelineConfig, pipeline) if pipeline else PipelineConfig(retrievers=index.parts)
        if mode:
            cfg = cfg.model_copy(update={"retrievers": PipelineConfig.preset(mode).retrievers})
        if rerank:
            cfg = cfg.model_copy(update={"rerank": PipelineRerank(model=rerank)})
        with progress_bar() as progress:
            retriever = build_pipeline(index, cfg, PipelineResources(progress=progress))
        if queries is not None:
            from lextune.jsonl import iter_jsonl, require_str
            from lextune.runs import write_trec_run

            qs = {}
            for lineno, obj in iter_jsonl(queries):
                key = "_id" if "_id" in obj else "id"
                qs[require_str(obj, key, path=str(queries), line=lineno, allow_number=True)] = require_str(
                    obj, "text", path=str(queries), line=lineno)
            run = retriever.search(qs, k)
            target = run_out or Path("run.trec")
            write_trec_run(run, target)
            out.print(f"searched {len(qs)} queries -> {target}")
            return
        if not query:
            raise ConfigError("give a question, or --queries FILE")
        hits = retriever.explain({"q": query}, k)["q"]
    table = Table(title=f"{query}", show_lines=True)
    for col in ("#", "score", "provision"):
        table.add_column(col)
    for h in hits:
        text = (h["text"] or "").replace("\n", " ")
        note = (f"\n↪ {h['note']}", "italic") if h.get("note") else ""
        table.add_row(str(h["rank"]), f"{h['score']:.3f}",
                      Text.assemble((h["title"] or h["id"], "bold"), f"\n{text[:200]}", note))
    if not hits:
        out.print(styled("no results", "yellow", " (the question has no searchable words)"))
        return
    out.print(table)
