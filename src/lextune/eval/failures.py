"""The failure notebook (오답 노트): every query whose first gold is not at the top, with why.

Categories:
- ``recall``: no gold within the candidate depth (the retriever never saw it);
- ``sibling_article``: the top hit is another provision of a gold's article;
- ``sibling_law``: the top hit is from a gold's law (same document), another article;
- ``ranking``: a gold was retrieved but ranked low, below unrelated provisions.
The JSONL is the input of targeted re-training; the Markdown is for people.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lextune.artifacts import atomic_file
from lextune.runs import Qrels, Run

CATEGORIES = ["recall", "sibling_article", "sibling_law", "ranking"]


@dataclass
class Gold:
    id: str
    title: str
    rank: int | None  # None: not retrieved within the candidate depth


@dataclass
class Hit:
    id: str
    title: str
    score: float
    gold: bool
    note: str | None = None  # why a pipeline step added it (cross-reference expansion)


@dataclass
class FailureCase:
    query_id: str
    query: str
    category: str
    first_gold_rank: int | None
    golds: list[Gold] = field(default_factory=list)
    top: list[Hit] = field(default_factory=list)
    system: str = ""


def _doc_of(doc_id: str, docs: dict[str, dict]) -> str:
    d = docs.get(doc_id) or {}
    return str(d.get("doc_id") or doc_id.split(":")[0].split("-")[0])


def _article_of(doc_id: str, docs: dict[str, dict]) -> str:
    d = docs.get(doc_id) or {}
    if d.get("parent_id"):
        return str(d["parent_id"])
    parts = doc_id.split("-")
    # BEIR statute ids such as L001702-665-1-0 (law-article-paragraph-item): the article is the first two
    return "-".join(parts[:2]) if ":" not in doc_id and len(parts) >= 3 else doc_id


def failure_cases(qrels: Qrels, run: Run, queries: dict[str, str], docs: dict[str, dict], *,
                  failure_rank: int = 1, top_k: int = 10, candidate_depth: int = 100,
                  system: str = "", notes: dict[str, dict[str, str]] | None = None) -> list[FailureCase]:
    """Cases for every judged query whose first relevant document ranks below ``failure_rank``; ``notes``
    (query -> document -> why a step added it) mark the hits a pipeline step brought in."""
    notes = notes or {}
    cases: list[FailureCase] = []
    for qid, judged in qrels.items():
        golds = {d for d, r in judged.items() if r > 0}
        if not golds:
            continue
        ranked = [d for d, _ in sorted(run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))][:candidate_depth]
        pos = {d: i + 1 for i, d in enumerate(ranked)}
        ranks = [pos[g] for g in golds if g in pos]
        first = min(ranks) if ranks else None
        if first is not None and first <= failure_rank:
            continue
        top1 = ranked[0] if ranked else None
        if first is None:
            category = "recall"
        elif top1 is not None and any(_article_of(top1, docs) == _article_of(g, docs) for g in golds):
            category = "sibling_article"
        elif top1 is not None and any(_doc_of(top1, docs) == _doc_of(g, docs) for g in golds):
            category = "sibling_law"
        else:
            category = "ranking"
        scores = run.get(qid, {})
        cases.append(FailureCase(
            query_id=qid, query=queries.get(qid, ""), category=category, first_gold_rank=first,
            golds=[Gold(g, (docs.get(g) or {}).get("title") or g, pos.get(g)) for g in sorted(golds)],
            top=[Hit(d, (docs.get(d) or {}).get("title") or d, float(scores[d]), d in golds, notes.get(qid, {}).get(d))
                 for d in ranked[:top_k]],
            system=system,
        ))
    return cases


def category_counts(cases: list[FailureCase]) -> dict[str, int]:
    return {c: sum(1 for x in cases if x.category == c) for c in CATEGORIES}


def write_failures(cases: list[FailureCase], folder: str | Path, name: str = "failures") -> tuple[Path, Path]:
    """``{name}.jsonl`` (for targeted training) and ``{name}.md`` (for reading), atomically."""
    folder = Path(folder)
    jsonl, md = folder / f"{name}.jsonl", folder / f"{name}.md"
    with atomic_file(jsonl) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
    counts = category_counts(cases)
    lines = [f"# 오답 노트 (failure notebook){': ' + cases[0].system if cases and cases[0].system else ''}", "",
             f"{len(cases)} queries whose first gold is not at rank 1. By category: "
             + ", ".join(f"{k} {v}" for k, v in counts.items()), ""]
    for c in cases:
        lines += [f"## {c.query_id} · {c.category} · first gold rank: {c.first_gold_rank or 'not retrieved'}", "",
                  f"> {c.query}", "", "**Gold**", ""]
        lines += [f"- {g.title} (`{g.id}`): {'rank ' + str(g.rank) if g.rank else 'not retrieved'}" for g in c.golds]
        lines += ["", "**Retrieved**", ""]
        lines += [f"{i}. {'✅ ' if h.gold else ''}{h.title} (`{h.id}`) {h.score:.4f}"
                  + (f" ↪ {h.note}" if h.note else "") for i, h in enumerate(c.top, 1)]
        lines.append("")
    with atomic_file(md) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    return jsonl, md
