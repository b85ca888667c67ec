"""``lextune eval``: evaluate runs or pipelines on a BEIR dataset and write metrics.json, per-query
scores, failure notebooks and the HTML report into one folder."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from lextune.artifacts import atomic_dir, make_meta, write_json_atomic
from lextune.eval.evaluate import EvalConfig, EvalResult, evaluate
from lextune.eval.failures import category_counts, failure_cases, write_failures
from lextune.runs import BeirDataset, Run, drop_ignored, write_trec_run


def dataset_hash(ds: BeirDataset, queries_file: str, split: str) -> str:
    h = hashlib.sha256()
    for name in ("corpus.jsonl", queries_file, f"qrels/{split}.tsv"):
        p = ds.path / name
        if p.is_file():
            h.update(name.encode())
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return h.hexdigest()


@dataclass
class System:
    """A named run plus what produced it (pipeline config, model specs and fingerprints), and ``notes``: why a
    pipeline step added a hit (query -> document -> note), shown in the failure notebook."""

    name: str
    run: Run
    provenance: dict
    notes: dict[str, dict[str, str]] | None = None


def run_evaluation(ds: BeirDataset, systems: list[System], out_dir: str | Path, *, config: EvalConfig | None = None,
                   queries_file: str = "queries.jsonl", split: str = "dev", duplicates: dict[str, int] | None = None,
                   report: bool = True, map_encoder=None) -> EvalResult:
    """Evaluate and write ``metrics.json``, ``per_query.jsonl``, ``runs/``, ``failures-*.{jsonl,md}``, ``report.html``."""
    config = config or EvalConfig()
    qrels = ds.qrels
    # A synthetic query's own source passage is not counted for or against it (BeirDataset.ignored).
    ignore = ds.ignored()
    systems = [System(s.name, drop_ignored(s.run, ignore), s.provenance, s.notes) for s in systems]
    notes = {s.name: s.notes for s in systems}
    runs = {s.name: s.run for s in systems}
    result = evaluate(qrels, runs, config, query_ids=set(ds.queries), corpus_ids=set(ds.corpus), duplicates=duplicates)
    judged = {q: qrels[q] for q in result.queries}
    docs = {d: {"title": v.get("title") or d, "parent_id": v.get("parent_id"), "doc_id": v.get("doc_id")}
            for d, v in ds.corpus.items()}
    failures = {s: failure_cases(judged, runs[s], ds.queries, docs, failure_rank=config.failure_rank,
                                 top_k=config.failure_top_k, candidate_depth=config.candidate_depth, system=s,
                                 notes=notes[s])
                for s in result.systems}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=True) as tmp:
        (tmp / "runs").mkdir()
        for s in systems:
            write_trec_run(s.run, tmp / "runs" / f"{_safe(s.name)}.trec", tag=_safe(s.name))
        with open(tmp / "per_query.jsonl", "w", encoding="utf-8") as f:
            for q in result.queries:
                row = {"query_id": q, "query": ds.queries.get(q, "")}
                for s in result.systems:
                    row[s] = {m: result.per_query[s][m][q] for m in config.metric_names()}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        for s, cases in failures.items():
            write_failures(cases, tmp, name=f"failures-{_safe(s)}")
        meta = make_meta(
            "evaluation", config=config.model_dump(),
            inputs={"dataset": str(ds.path), "dataset_sha256": dataset_hash(ds, queries_file, split),
                    "queries_file": queries_file, "split": split},
            systems={s.name: s.provenance for s in systems},
            results=result.to_dict(), failures={s: category_counts(c) for s, c in failures.items()},
        )
        write_json_atomic(tmp / "metrics.json", meta)
        if report:
            from lextune.eval.report import embedding_map, render_report

            map_png = None
            if map_encoder is not None:
                map_png = _map(ds, judged, failures[result.systems[-1]], map_encoder, embedding_map)
            render_report(result, runs, judged, failures, tmp / "report.html",
                          title=f"lextune evaluation: {ds.path.name} ({queries_file})",
                          meta={"dataset": str(ds.path), "dataset sha256": meta["inputs"]["dataset_sha256"][:16],
                                "lextune": meta["lextune_version"], **{f"system {k}": json.dumps(v, ensure_ascii=False)
                                                                       for k, v in meta["systems"].items()}},
                          map_png=map_png)
    return result


def _map(ds: BeirDataset, judged: dict, cases, encoder, embedding_map) -> str:
    failed = {c.query_id for c in cases}
    qids = list(judged)
    gold_ids = sorted({d for q in qids for d, r in judged[q].items() if r > 0 and d in ds.corpus})
    qv = encoder.encode_queries([ds.queries[q] for q in qids])
    pv = encoder.encode_passages([f"{ds.corpus[d]['title']}\n{ds.corpus[d]['text']}" for d in gold_ids])
    info = ds.query_info or {}
    synthetic = [bool((info.get(q) or {}).get("generator")) for q in qids]  # lextune synth marks its queries
    return embedding_map(qv, [q in failed for q in qids], pv, synthetic if any(synthetic) else None)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
