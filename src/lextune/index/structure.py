"""Retrieval over the law's structure: law routing, cross-reference expansion and article pooling.

Pure functions over one query's candidates (``{doc id: score}``) and what an index knows of its documents
(each one's law and article, the citations between them: :class:`Structure`); the pipeline's steps
(:mod:`lextune.index.pipeline`) wrap them. Every function works on the candidates' scores min-max normalised
to [0, 1], so that its parameters mean the same over BM25, dense or fused first stages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from lextune.lawnames import LAW_ALIASES, act_name, norm_name

Scores = dict[str, float]


class RouteConfig(BaseModel):
    """Law routing: a query that names a law (「상법」, 상법상, a short name such as 자본시장법) lifts that law's
    candidates (an act's 시행령 and 시행규칙 too); with ``hits``, a query that names none lifts the laws its top
    hits come from, by their share of those hits' scores (the provisions a question needs are mostly of one law)."""

    model_config = ConfigDict(extra="forbid")

    boost: float = Field(0.3, gt=0, le=1, description="Added to a named law's candidates' normalised scores "
                         "(a law of the top hits: boost x its share of their scores).")
    family: bool = Field(True, description="An act named brings its 시행령 and 시행규칙.")
    hits: int = Field(0, ge=0, le=100, description="Top hits whose laws are lifted when the query names no law "
                      "(0: only named laws). It favours laws with many matching paragraphs: measured in "
                      "docs/benchmarks.md before turning it on.")


class ExpandConfig(BaseModel):
    """Cross-reference expansion: provisions that the top hits cite or are cited by (and definitions of terms
    the query uses) join the candidates, scored from their source hits."""

    model_config = ConfigDict(extra="forbid")

    top: int = Field(10, ge=1, le=100, description="Hits whose citations are followed.")
    decay: float = Field(0.5, gt=0, le=1, description="A reached provision scores decay x its source's "
                         "normalised score per hop (a candidate keeps the better of its own and this).")
    depth: int = Field(1, ge=1, le=3, description="Hops followed.")
    fan_out: int = Field(10, ge=1, le=200, description="Provisions followed per hit and direction, the hit's "
                         "own law and the best-scored first.")
    cited_by: bool = Field(True, description="Also the provisions that cite a hit.")
    definitions: bool = Field(True, description="Also the definitions (정의 조항) of terms the query uses, in "
                              "the hits' laws.")


class PoolConfig(BaseModel):
    """Article pooling: an article whose several paragraphs match lifts its best paragraph (by the sum of its
    top ``m``); its other paragraphs and single-paragraph articles keep their scores. Paragraphs stay the
    results (``aggregate: article`` returns whole articles, scored by their best paragraph)."""

    model_config = ConfigDict(extra="forbid")

    m: int = Field(2, ge=2, le=20, description="Paragraphs of an article pooled: its best and m - 1 more.")
    weight: float = Field(0.3, gt=0, le=1, description="The best paragraph gains weight x the normalised scores "
                          "of its article's next m - 1 paragraphs.")


def normalized(scores: Scores) -> Scores:
    """Min-max to [0, 1] (one candidate, or all equal: 1)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi <= lo:
        return dict.fromkeys(scores, 1.0)
    return {d: (s - lo) / (hi - lo) for d, s in scores.items()}


def _ranked(scores: Scores) -> list[str]:
    return [d for d, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


# Terms a definitions article defines: '"건축사"란', '“설계”란', '"보험계약"이란'.
_DEFINED = re.compile(r"[\"“']([^\"”'\n]{2,30})[\"”']\s*(?:이)?란")


@dataclass
class Structure:
    """What the structure steps know of an index's documents: law and article of each, the citations
    between them (``cites[a]``: the documents ``a`` cites), and the terms each law's definitions define."""

    law: dict[str, str]
    article: dict[str, str]
    title: dict[str, str]
    cites: dict[str, list[str]] = field(default_factory=dict)
    cited_by: dict[str, list[str]] = field(default_factory=dict)
    definitions: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # law -> term -> doc ids

    @classmethod
    def build(cls, docs: dict[str, dict], edges: Iterable[tuple[str, str]]) -> Structure:
        """From index documents (``law``, ``article``, ``parent_id``, ``title``, ``text``) and citation edges."""
        law = {d: v["law"] for d, v in docs.items() if v.get("law")}
        article = {d: f"{v['law']}|{v['article']}" if v.get("law") and v.get("article") else v.get("parent_id") or d
                   for d, v in docs.items()}
        s = cls(law, article, {d: v.get("title") or d for d, v in docs.items()})
        for a, b in edges:
            if a in docs and b in docs and a != b:
                s.cites.setdefault(a, []).append(b)
                s.cited_by.setdefault(b, []).append(a)
        for d, v in docs.items():
            if d in law and "(정의)" in (v.get("title") or ""):
                for term in _DEFINED.findall(v.get("text") or ""):
                    s.definitions.setdefault(law[d], {}).setdefault(term.strip(), []).append(d)
        return s


# -- law routing ------------------------------------------------------------------------------------
class LawMatcher:
    """Finds the laws a query names: a full name (spacing and middle dots as written, 「」 or not, ``상법상``)
    or a short name (``자본시장법``), each mapped to the laws of the index; with ``family``, an act brings its
    시행령 and 시행규칙 (and a decree named alone stays alone)."""

    def __init__(self, laws: Iterable[str], family: bool = True) -> None:
        by_key: dict[str, set[str]] = {}
        for name in set(laws):
            by_key.setdefault(norm_name(name), set()).add(name)
        for short, full in LAW_ALIASES.items():
            if norm_name(full) in by_key:
                by_key.setdefault(norm_name(short), set()).update(by_key[norm_name(full)])
        self._laws = by_key
        self._family: dict[str, set[str]] = {}
        if family:
            for name in {n for names in by_key.values() for n in names}:
                self._family.setdefault(norm_name(act_name(name)), set()).add(name)
        # Longest first, so that '상법 시행령' wins over '상법'; not inside a longer word ('해상법').
        keys = sorted(by_key, key=len, reverse=True)
        pattern = "|".join(r"\s*".join(map(re.escape, k)) for k in keys)
        self._re = re.compile(rf"(?<![가-힣])(?:{pattern})") if keys else None

    def laws_in(self, query: str) -> set[str]:
        if self._re is None:
            return set()
        found: set[str] = set()
        for m in self._re.finditer(query):
            for name in self._laws.get(norm_name(m.group(0)), ()):
                found.add(name)
                if name == act_name(name):  # an act: its decrees and rules too
                    found |= self._family.get(norm_name(name), set())
        return found


def route(scores: Scores, named: set[str], law_of: dict[str, str], boost: float, hits: int = 0) -> Scores:
    """Candidates of a named law get ``boost`` on their normalised score; without named laws, candidates of
    the laws of the top ``hits`` get ``boost`` x their law's share of those hits' normalised scores (0: the
    order is kept)."""
    base = normalized(scores)
    if named:
        return {d: s + (boost if law_of.get(d) in named else 0.0) for d, s in base.items()}
    mass: Scores = {}
    for d in _ranked(base)[:hits]:
        if d in law_of:
            mass[law_of[d]] = mass.get(law_of[d], 0.0) + base[d]
    total = sum(mass.values())
    if not total:
        return base
    return {d: s + boost * mass.get(law_of.get(d, ""), 0.0) / total for d, s in base.items()}


# -- cross-reference expansion ----------------------------------------------------------------------
def _neighbours(d: str, s: Structure, p: ExpandConfig, base: Scores) -> list[tuple[str, str]]:
    """(neighbour, how) of one source: what it cites, then (``cited_by``) what cites it; at most ``fan_out``
    each way, the source's own law and the best-scored first."""
    out: list[tuple[str, str]] = []
    ways = [("cited by", s.cites.get(d, []))] + ([("cites", s.cited_by.get(d, []))] if p.cited_by else [])
    for how, docs in ways:
        law = s.law.get(d)
        ranked = sorted(docs, key=lambda t: (s.law.get(t) != law, -base.get(t, 0.0), t))[: p.fan_out]
        out += [(t, how) for t in ranked]
    return out


def expand(query: str, scores: Scores, s: Structure, p: ExpandConfig) -> tuple[Scores, Scores, dict[str, str]]:
    """The candidates plus the provisions their top ``top`` cite or are cited by (and, with ``definitions``,
    the definitions of terms the query uses in those hits' laws), each scored ``decay`` x its source's
    normalised score per hop, up to ``depth`` hops; a candidate keeps the better of its own and a derived
    score. Returns (all scores, the derived scores that were used, a note per expanded document)."""
    base = normalized(scores)
    out = dict(base)
    derived: Scores = {}
    notes: dict[str, str] = {}

    def offer(t: str, score: float, note: str) -> bool:
        if score > out.get(t, 0.0) + 1e-12:
            out[t] = derived[t] = score
            if t not in base:
                notes[t] = note
            return True
        return False

    frontier = {d: base[d] for d in _ranked(base)[: p.top]}
    for _hop in range(p.depth):
        nxt: Scores = {}
        for d, sd in frontier.items():
            for t, how in _neighbours(d, s, p, base):
                if t != d and offer(t, p.decay * sd, f"{how} {s.title.get(d, d)}"):
                    nxt[t] = out[t]
        frontier = nxt
    if p.definitions:
        best_of_law: Scores = {}
        for d in _ranked(base)[: p.top]:
            if d in s.law:
                best_of_law.setdefault(s.law[d], base[d])
        for law, best in best_of_law.items():
            for term, docs in s.definitions.get(law, {}).items():
                if term in query:
                    for t in docs:
                        offer(t, p.decay * best, f"defines '{term}' ({law})")
    return out, derived, notes


# -- article pooling --------------------------------------------------------------------------------
def pool(scores: Scores, article_of: dict[str, str], m: int, weight: float) -> Scores:
    """Normalised scores, the best paragraph of each article raised by ``weight`` x the sum of its article's
    next ``m - 1`` candidates' (the evidence of several matching paragraphs); the rest unchanged."""
    base = normalized(scores)
    members: dict[str, list[str]] = {}
    for d in _ranked(base):
        members.setdefault(article_of.get(d, d), []).append(d)
    out = dict(base)
    for docs in members.values():
        out[docs[0]] += weight * sum(base[d] for d in docs[1:m])
    return out
