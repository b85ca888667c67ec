"""Offline query generators (no LLM): article titles, inverse cloze, citing paragraphs.

Each yields :class:`SynthQuery` records that name their source chunk(s), the generator and its version.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lextune.schema import Chunk, RefEdge

_SENT_SPLIT = re.compile(r"(?<=[.?!다])\s+(?=\S)")
_CITATION = re.compile(r"「[^」]{1,80}」|(?:같은\s*법|이\s*법|법|영)?\s*제\s*\d+\s*조(?:의\s*\d+)?(?:\s*제\s*\d+\s*[항호])*|제\s*\d+\s*[항호](?:\s*제\s*\d+\s*호)?")
_TITLE_RE = re.compile(r"제\d+조(?:의\d+)?\(([^)]*(?:\([^)]*\))?[^)]*)\)")


@dataclass
class SynthQuery:
    id: str
    text: str
    positives: list[str]
    generator: str
    version: str
    source_doc: str
    metadata: dict = field(default_factory=dict)
    # Chunks that contain the query's own text without being its answer (a citing paragraph for its
    # citation query): evaluation does not count them and mining never picks them as negatives.
    ignore: list[str] = field(default_factory=list)


def _article_title(chunk: Chunk) -> str | None:
    last = chunk.title.split(" > ")[-1] if chunk.title else ""
    m = _TITLE_RE.search(last)
    return m.group(1).strip() if m and m.group(1).strip() else None


def title_queries(chunks: list[Chunk], rng: random.Random, **_) -> Iterator[SynthQuery]:
    """One query per article title: '「법」 손해배상' for every paragraph of that article (all positives)."""
    by_article: dict[str, list[Chunk]] = {}
    for c in chunks:
        if c.article and _article_title(c):
            by_article.setdefault(c.parent_id or c.id, []).append(c)
    for art, members in by_article.items():
        title = _article_title(members[0])
        assert title is not None
        law = members[0].law_name or ""
        text = f"{law} {title}" if rng.random() < 0.5 else f"{law}에서 {title}에 관한 규정은 무엇인가?"
        yield SynthQuery(f"title:{art}", text, [m.id for m in members], "title", "1", members[0].doc_id)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text.replace("\n", " ")) if len(s.strip()) >= 15]


def ict_queries(chunks: list[Chunk], rng: random.Random, *, remove_prob: float = 0.9, **_) -> Iterator[SynthQuery]:
    """Inverse cloze: a sentence of the chunk is the query; with ``remove_prob`` it leaves the passage."""
    for c in chunks:
        sents = _sentences(c.text)
        if len(sents) < 1:
            continue
        s = rng.choice(sents)
        meta: dict = {}
        if len(sents) > 1 and rng.random() < remove_prob:
            rest = c.text.replace(s, " ").strip()
            meta["positive_text"] = c.contents.replace(c.text, rest)
        yield SynthQuery(f"ict:{c.id}", s, [c.id], "ict", "1", c.doc_id, meta)


def ref_queries(chunks: list[Chunk], rng: random.Random, *, edges: list[RefEdge] | None = None,
                max_per_target: int = 3, **_) -> Iterator[SynthQuery]:
    """A paragraph that cites provisions, with the citations removed, as a query for what it cites."""
    by_id = {c.id: c for c in chunks}
    ids_under: dict[str, list[str]] = {}
    for c in chunks:
        ids_under.setdefault(c.parent_id or c.id, []).append(c.id)
    cited: dict[str, list[RefEdge]] = {}
    for e in edges or []:
        cited.setdefault(e.source, []).append(e)
    per_target: dict[str, int] = {}
    for source, out_edges in cited.items():
        src = by_id.get(source)
        if src is None or src.doc_id.startswith("prec"):
            continue
        targets: list[str] = []
        for e in out_edges:
            if per_target.get(e.target, 0) >= max_per_target:
                continue
            found = [e.target] if e.target in by_id else ids_under.get(e.target, [])
            if found:
                per_target[e.target] = per_target.get(e.target, 0) + 1
                targets.extend(t for t in found if t not in targets)
        if not targets:
            continue
        text = re.sub(r"\s+", " ", _CITATION.sub(" ", src.text)).strip()
        if len(text) < 15:
            continue
        yield SynthQuery(f"ref:{source}", text[:300], targets, "refs", "1", by_id[targets[0]].doc_id,
                         {"citing": source, "citations": [e.citation for e in out_edges]}, [source])


GENERATORS: dict[str, Callable[..., Iterator[SynthQuery]]] = {
    "title": title_queries,
    "ict": ict_queries,
    "refs": ref_queries,
}
