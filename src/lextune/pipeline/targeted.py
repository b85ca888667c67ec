"""The failure-driven second pass (the seed's best result came from it).

1. Split the labelled validation queries (by a stable hash) into a *select* part and a *check* part.
2. Search both with the tuned bi-encoder; the failure notebook of the select part names the targets.
3. For every missed gold chunk, make new queries with the offline generators (other sentences, its title);
   queries equal to any validation query are dropped, so nothing of the check part leaks in.
4. Negatives are the chunks that outranked the gold (siblings of the gold excluded: likely false
   negatives); a replay share of the earlier training records is mixed in.
5. Continue training from the tuned model (full or adapter) and judge before/after on the check part,
   overall and per failure category.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from pathlib import Path

from lextune import markdown
from lextune.artifacts import atomic_dir, make_meta, write_json_atomic
from lextune.errors import ConfigError
from lextune.eval.failures import CATEGORIES, category_counts, failure_cases, write_failures
from lextune.eval.metrics import evaluate_run
from lextune.pipeline.config import TargetedConfig
from lextune.schema import TrainingExample, read_training_examples

METRICS = ["ndcg@10", "mrr@10", "hit_rate@1", "recall@10"]


def _part(qid: str, seed: int) -> float:
    return int(hashlib.sha1(f"{seed}:{qid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def targeted_records(cases, chunks: dict, docs: dict, cfg: TargetedConfig,
                     banned_texts: set[str]) -> list[TrainingExample]:
    """New training records around the missed gold chunks, negatives from what outranked them."""
    from lextune.synth.generators import ict_queries, title_queries

    rng = random.Random(cfg.seed)
    records, seen = [], set(banned_texts)
    for case in cases:
        golds = [g.id for g in case.golds if g.id in chunks]
        gold_parents = {docs[g].get("parent_id") or g for g in golds}
        above = [h.id for h in case.top if not h.gold and (docs[h.id].get("parent_id") or h.id) not in gold_parents]
        if len(above) < cfg.n_negatives:
            continue
        for g in golds:
            made = list(title_queries([chunks[g]], rng))
            for _ in range(cfg.queries_per_gold * 3):
                made.extend(ict_queries([chunks[g]], rng, remove_prob=1.0))
            texts = []
            for q in made:
                if q.text not in seen and len(texts) < cfg.queries_per_gold:
                    seen.add(q.text)
                    texts.append((q.text, q.metadata.get("positive_text")))
            for i, (text, pos_text) in enumerate(texts):
                rec = {"query_id": f"targeted:{case.query_id}:{g}:{i}", "query": text, "pos": [g],
                       "neg": above[: max(cfg.n_negatives, 7)], "neg_kinds": ["outranked"] * min(len(above), 7),
                       "source_failure": case.query_id, "category": case.category}
                if pos_text:
                    rec["pos_text"] = pos_text
                records.append(TrainingExample(**rec))
    return records


def run_targeted(cfg: TargetedConfig, *, model: str | Path, index_dir: str | Path, synth_dir: str | Path,
                 train_file: str | Path, out_dir: str | Path, train_config, chunks_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Run the targeted pass; write the records, the new model, the failure notebook and the report."""
    from lextune.index import LexIndex
    from lextune.ingest import read_chunks
    from lextune.models.biencoder import BiEncoder
    from lextune.runs import drop_ignored, load_beir
    from lextune.train.biencoder import train_biencoder

    say = progress or (lambda m: None)
    start = time.perf_counter()
    out_dir = Path(out_dir)
    index = LexIndex.load(index_dir)
    chunks_dir = Path(chunks_dir or index.meta.get("inputs", {}).get("chunks") or "")
    if not (chunks_dir / "chunks.jsonl").is_file():
        raise ConfigError(f"targeted needs the ingest folder of the index (chunks.jsonl); not found at {chunks_dir}")
    chunks = {c.id: c for c in read_chunks(chunks_dir)}
    ds = load_beir(synth_dir, split="dev")
    judged = {q: r for q, r in ds.qrels.items() if q in ds.queries and any(d in index.docs for d in r)}
    if len(judged) < 4:
        raise ConfigError(f"{synth_dir}: the validation split has {len(judged)} usable queries; targeted needs a few")
    check = {q for q in judged if _part(q, cfg.seed) < cfg.check_fraction}
    select = set(judged) - check
    queries = {q: ds.queries[q] for q in judged}

    def dense_run(spec: str) -> dict:
        return index.dense_with(BiEncoder(spec)).search(queries, 100)

    say(f"searching {len(queries)} validation queries with the tuned model")
    ignore = ds.ignored()  # a query's own source passage counts neither as a failure nor as a negative
    before = drop_ignored(dense_run(str(model)), ignore)
    docs = {d: {"title": v.get("title") or d, "parent_id": v.get("parent_id"), "doc_id": getattr(chunks.get(d), "doc_id", None)}
            for d, v in index.docs.items()}
    sel_qrels = {q: judged[q] for q in select}
    cases = failure_cases(sel_qrels, before, queries, docs, failure_rank=cfg.failure_rank, top_k=20)
    cases = sorted(cases, key=lambda c: c.query_id)[: cfg.max_failures]
    records = targeted_records(cases, chunks, index.docs, cfg, banned_texts=set(ds.queries.values()))
    if not records:
        raise ConfigError("no targeted record could be made (no failures with negatives in the select split)")
    earlier = read_training_examples(train_file)
    rng = random.Random(cfg.seed)
    replay = rng.sample(earlier, min(len(earlier), int(round(len(records) * cfg.replay_ratio))))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / "data", overwrite=True) as tmp:
        with open(tmp / "train.jsonl", "w", encoding="utf-8") as f:
            for rec in records + replay:
                f.write(rec.model_dump_json(exclude_unset=True) + "\n")
        write_failures(cases, tmp, name="failures-select")
    data_file = out_dir / "data" / "train.jsonl"
    say(f"{len(cases)} failures -> {len(records)} new records + {len(replay)} replayed; continuing training")
    tcfg = train_config.model_copy(update={"base_model": str(model), "train_file": str(data_file),
                                           "output_dir": str(out_dir / "model"), "eval": None, **cfg.train})
    train_summary = train_biencoder(type(train_config).model_validate(tcfg.model_dump()), progress=progress)
    say("judging before/after on the check split")
    after = drop_ignored(dense_run(str(out_dir / "model")), ignore)
    report: dict = {"validation_queries": len(judged), "select_queries": len(select), "check_queries": len(check),
                    "failures_selected": len(cases), "new_records": len(records), "replayed": len(replay),
                    "train": {k: v for k, v in train_summary.items() if k != "loss_history"}}
    for part, ids in (("check", check), ("select", select)):
        qrels = {q: judged[q] for q in ids}
        m_before = evaluate_run(qrels, {q: before[q] for q in ids}, METRICS)
        m_after = evaluate_run(qrels, {q: after[q] for q in ids}, METRICS)
        c_before = category_counts(failure_cases(qrels, before, queries, docs, failure_rank=cfg.failure_rank))
        c_after = category_counts(failure_cases(qrels, after, queries, docs, failure_rank=cfg.failure_rank))
        report[part] = {"before": m_before, "after": m_after,
                        "failures_by_category": {c: {"before": c_before[c], "after": c_after[c]} for c in CATEGORIES}}
    report["by_category"] = report["check"]["failures_by_category"]
    report["seconds"] = time.perf_counter() - start
    write_json_atomic(out_dir / "targeted.json", make_meta("targeted", config=cfg.model_dump(mode="json"), report=report))
    (out_dir / "targeted.md").write_text(targeted_markdown(report), encoding="utf-8")
    return report


def targeted_markdown(r: dict) -> str:
    lines = [f"# Targeted pass: {r['failures_selected']} failures of {r['select_queries']} select queries -> "
             f"{r['new_records']} new records (+{r['replayed']} replayed)", ""]
    for part in ("check", "select"):
        lines += [f"## {part} split ({r[part + '_queries']} queries)", "", *markdown.table(
            ["metric", "before", "after"], [[m, f"{r[part]['before'][m]:.3f}", f"{r[part]['after'][m]:.3f}"]
                                            for m in METRICS]), ""]
        lines += [*markdown.table(["failure category", "before", "after"], [
            [c, str(v["before"]), str(v["after"])] for c, v in r[part]["failures_by_category"].items()]), ""]
    return "\n".join(lines)
