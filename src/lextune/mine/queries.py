"""The training queries to mine for: texts, positives and metadata from a synth folder, and a stratified sample."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lextune.errors import InputFormatError
from lextune.jsonl import iter_jsonl
from lextune.runs import query_ignore, read_qrels


def load_training_queries(folder: str | Path, split: str = "train") -> tuple[dict[str, str], dict[str, list[str]], dict[str, dict]]:
    """Queries, their positives and metadata from a synth output folder (BEIR layout)."""
    folder = Path(folder)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    texts: dict[str, str] = {}
    meta: dict[str, dict] = {}
    for lineno, obj in iter_jsonl(folder / "queries.jsonl"):
        qid = str(obj.get("_id", obj.get("id")))
        if "text" not in obj:
            raise InputFormatError("missing field", path=str(folder / "queries.jsonl"), line=lineno, field="text")
        texts[qid] = obj["text"]
        ignore = query_ignore(obj, path=str(folder / "queries.jsonl"), line=lineno)
        meta[qid] = {**(obj.get("metadata") or {}), **({"ignore": ignore} if ignore else {}),
                     "generator": str(obj.get("generator") or "unknown")}
    positives = {q: [d for d, r in docs.items() if r > 0] for q, docs in qrels.items() if q in texts}
    return {q: texts[q] for q in positives}, positives, meta


def stratified_sample(qids: list[str], groups: dict[str, str], n: int, seed: int) -> list[str]:
    """``n`` query ids taking the groups (generators) in turn, each group in a stable hash order."""
    by_group: dict[str, list[str]] = {}
    for q in sorted(qids, key=lambda q: hashlib.sha1(f"{seed}:{q}".encode()).hexdigest()):
        by_group.setdefault(groups.get(q, "unknown"), []).append(q)
    out: list[str] = []
    lists = [by_group[g] for g in sorted(by_group)]
    i = 0
    while len(out) < min(n, len(qids)):
        for lst in lists:
            if i < len(lst) and len(out) < n:
                out.append(lst[i])
        i += 1
    return out
