"""Offline query generators (no LLM): article titles, inverse cloze, questions, citing paragraphs, and
court decisions' legal issues and holdings (``precedents``, ``holdings``).

Each yields :class:`SynthQuery` records that name their source chunk(s), the generator and its version.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

from lextune.ingest.structure import parse_heading
from lextune.schema import Chunk, RefEdge, SynthQuery

_SENT_SPLIT = re.compile(r"(?<=[.?!다])\s+(?=\S)")
_CITATION = re.compile(r"「[^」]{1,80}」|(?:같은\s*법|이\s*법|법|영)?\s*제\s*\d+\s*조(?:의\s*\d+)?(?:\s*제\s*\d+\s*[항호])*|제\s*\d+\s*[항호](?:\s*제\s*\d+\s*호)?")
_TITLE_RE = re.compile(r"제\d+조(?:의\d+)?\(([^)]*(?:\([^)]*\))?[^)]*)\)")


def _article_title(chunk: Chunk) -> str | None:
    last = chunk.title.split(" > ")[-1] if chunk.title else ""
    m = _TITLE_RE.search(last)
    return m.group(1).strip() if m and m.group(1).strip() else None


def _article_of(chunk: Chunk) -> tuple[str, str, str] | None:
    """(article key, law name, article title) from the chunk's structure, else from a heading title."""
    if chunk.article:
        title = _article_title(chunk)
        return (chunk.parent_id or chunk.id, chunk.law_name or "", title) if title else None
    found = parse_heading(chunk.title) if chunk.title and " > " not in chunk.title else None
    if found is None:
        return None
    law, article, title = found
    return f"{law}:{article}", law, title


def title_queries(chunks: list[Chunk], rng: random.Random, **_) -> Iterator[SynthQuery]:
    """One query per article title: '「법」 손해배상' for every paragraph of that article (all positives).
    Articles come from ingest's structure, or from heading titles like '상법 44조  채무인수를 광고한 양수인의 책임'."""
    by_article: dict[str, list[Chunk]] = {}
    heading: dict[str, tuple[str, str]] = {}
    for c in chunks:
        if found := _article_of(c):
            key, law, title = found
            by_article.setdefault(key, []).append(c)
            heading.setdefault(key, (law, title))
    for art, members in by_article.items():
        law, title = heading[art]
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


_AMEND = re.compile(r"\s*<(?:개정|신설|전문개정|본조신설|삭제|제목개정)[^>]*>")
_LEAD = re.compile(r"^(?:(?:[①-⑳]|\d+\.|[가-하]\.|제\d+조(?:의\d+)?\([^)]*\)|다만,?|그러나|이 경우)\s*)+")
_PENALTY = re.compile(r"^(?P<who>.{6,120}?자)(?:는|도)\s.*(?:처한다|부과한다|병과할 수 있다)\.?$")
_DEFINITION = re.compile(r"^[\"“']?(?P<term>[^\"”'\s][^\"”']{0,28}?)[\"”']?(?P<ran>이란|란)\s")
_CONDITION = re.compile(r"(?:경우에는|경우|때에는|때)(?=\s)")
# The consequence's predicate -> how the question asks for it (the first that matches).
_ASKS = [(re.compile(r"(?:하여야|해야|받아야|얻어야|거쳐야)\s*한다\.?$"), "어떻게 하여야 하는가?"),
         (re.compile(r"할 수 있다\.?$"), "무엇을 할 수 있는가?"),
         (re.compile(r"(?:할 수 없다|아니한다|못한다|아니된다|안 된다)\.?$"), "무엇이 제한되는가?"),
         (re.compile(r"본다\.?$"), "어떻게 보는가?")]


def _question(sentence: str) -> str | None:
    """A question a reader would ask of a statute sentence, without its answer: the penalty of an act, the
    meaning of a defined term, or what follows from a condition ('…하는 경우 어떻게 하여야 하는가?')."""
    s = _LEAD.sub("", _AMEND.sub("", sentence)).strip()
    if "다음 각 호" in s or len(s) < 20:
        return None
    if m := _PENALTY.match(s):
        return f"{m['who']}는 어떤 처벌을 받는가?"
    if m := _DEFINITION.match(s):
        return f"{m['term']}{m['ran']} 무엇을 말하는가?"
    cuts = [m for m in _CONDITION.finditer(s) if 12 <= m.end() <= len(s) - 8]
    if not cuts:
        return None
    cut = cuts[-1]
    rest = s[cut.end():].strip()
    ask = next((q for pattern, q in _ASKS if pattern.search(rest)), "어떻게 되는가?")
    return f"{s[:cut.end()]} {ask}"


def question_queries(chunks: list[Chunk], rng: random.Random, **_) -> Iterator[SynthQuery]:
    """A question made from one sentence of the chunk by rule (see ``_question``); the passage keeps the
    answer. Closer to what users ask than inverse cloze, and the answer never appears in the query."""
    for c in chunks:
        made = [q for q in map(_question, _sentences(c.text)) if q]
        if made:
            yield SynthQuery(f"question:{c.id}", rng.choice(made), [c.id], "question", "1", c.doc_id)


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


def _precedent_generator(kind: str) -> Callable[..., Iterator[SynthQuery]]:
    def generate(chunks: list[Chunk], rng: random.Random, *, precedents: list | None = None,
                 report: dict | None = None, **_) -> Iterator[SynthQuery]:
        from lextune.synth.precedents import PrecedentStats, precedent_item_queries

        stats = PrecedentStats()
        yield from precedent_item_queries(chunks, kind, precedents or [], stats)
        if report is not None:
            report[kind] = stats.to_dict()

    generate.__doc__ = (f"Court decisions' {'판시사항' if kind == 'precedents' else '판결요지'} items as queries for the "
                        "provisions they cite (see lextune.synth.precedents).")
    return generate


GENERATORS: dict[str, Callable[..., Iterator[SynthQuery]]] = {
    "title": title_queries,
    "ict": ict_queries,
    "question": question_queries,
    "refs": ref_queries,
    "precedents": _precedent_generator("precedents"),
    "holdings": _precedent_generator("holdings"),
}
# Generators whose positives are found anywhere in the corpus (not only in the sampled chunk pool).
WHOLE_CORPUS = {"title", "refs", "precedents", "holdings"}
