"""False-negative control: candidates that are likely relevant never become negatives.

Two kinds of filter, each drop counted by its reason. *Relation filters* (``FILTERS``, one entry each: the
query's own source passage, sibling provisions of a positive, provisions linked to it by a reference) drop by
what a candidate is; ``keep_below`` drops by score, what rivals the best positive (ratio or margin, on the
query's pool scale). Whatever a filter drops is also banned as a random negative.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lextune.jsonl import iter_records
from lextune.mine.config import MineConfig
from lextune.schema import RefEdge


def article_keys(docs: dict[str, dict]) -> dict[str, str]:
    """Document id -> the article it belongs to: ingest's ``parent_id``; for a passage without structure, the
    article its title names (``민법 406조 (채권자취소권)``, so the other paragraphs of a cited article are
    siblings in a BEIR corpus too); else the document itself."""
    from lextune.ingest.refs import heading_article

    keys: dict[str, str] = {}
    for d, v in docs.items():
        if v.get("parent_id"):
            keys[d] = v["parent_id"]
            continue
        found = heading_article(v.get("title"))
        keys[d] = f"{found[1]}:{found[2]}" if found else d
    return keys


def read_links(refs_path: Path | None) -> dict[str, set[str]]:
    """Reference edges (``refs.jsonl``) as an undirected neighbour map; none when the file is absent."""
    links: dict[str, set[str]] = {}
    if refs_path and refs_path.is_file():
        for _, e in iter_records(refs_path, RefEdge):
            links.setdefault(e.source, set()).add(e.target)
            links.setdefault(e.target, set()).add(e.source)
    return links


@dataclass
class Relations:
    """How the corpus's documents relate: the article of each, the documents of each article, reference links."""

    parent: dict[str, str]
    members: dict[str, set[str]]
    links: dict[str, set[str]]

    @classmethod
    def build(cls, docs: dict[str, dict], refs_path: Path | None) -> Relations:
        parent = article_keys(docs)
        members: dict[str, set[str]] = {}
        for d, p in parent.items():
            members.setdefault(p, set()).add(d)
        return cls(parent, members, read_links(refs_path))

    def siblings(self, pos: list[str]) -> set[str]:
        """The other documents of the positives' articles."""
        return set().union(*(self.members.get(self.parent.get(p, p), set()) for p in pos)) - set(pos)

    def linked(self, pos: list[str]) -> set[str]:
        """Documents a reference links to a positive or its article, with their articles' other documents."""
        near = set().union(*(self.links.get(p, set()) | self.links.get(self.parent.get(p, p), set()) for p in pos))
        return near | {d for n in near for d in self.members.get(n, set())}


@dataclass(frozen=True)
class RelationFilter:
    """One false-negative rule: when it applies, and which documents it excludes for a query."""

    reason: str
    applies: Callable[[MineConfig], bool]
    excluded: Callable[[list[str], dict, Relations], set[str]]


FILTERS: list[RelationFilter] = [
    RelationFilter("the query's source", lambda c: True, lambda pos, meta, rel: set(meta.get("ignore") or ())),
    RelationFilter("sibling of a positive", lambda c: c.exclude_siblings, lambda pos, meta, rel: rel.siblings(pos)),
    RelationFilter("linked by a reference", lambda c: c.exclude_cited, lambda pos, meta, rel: rel.linked(pos)),
]


def filter_pool(pool: list[str], pos: list[str], meta: dict, relations: Relations, config: MineConfig,
                dropped: Counter) -> tuple[list[str], set[str]]:
    """The pool without what the relation filters exclude (counted by reason), and every excluded document."""
    banned = set(pos)  # never a negative, not even a random one
    for f in FILTERS:
        if not f.applies(config) or not (excluded := f.excluded(pos, meta, relations)):
            continue
        dropped[f.reason] += sum(1 for c in pool if c in excluded)
        pool = [c for c in pool if c not in excluded]
        banned |= excluded
    return pool, banned


def keep_below(ids: list[str], scores: dict[str, float], ref: float | None, floor: float | None,
               config: MineConfig, banned: set[str], dropped: Counter) -> list[str]:
    """``ids`` by score, without those too close to the best positive ``ref`` (counted, and banned as negatives).
    With a ``floor`` (score_scale pool) scores and ``ref`` are first rescaled so that floor -> 0, ref -> 1."""
    if ref is not None and floor is not None:
        span = ref - floor
        if span > 0:  # else every candidate outscores the positive: nothing is comparable, keep raw scores
            scores = {c: (scores[c] - floor) / span for c in ids}
            ref = 1.0
    kept = []
    for c in sorted(ids, key=lambda x: -scores[x]):
        s = scores[c]
        if ref is not None and config.max_score_ratio is not None and ref > 0 and s > config.max_score_ratio * ref:
            dropped["scores near the positive (ratio)"] += 1
            banned.add(c)
            continue
        if ref is not None and config.min_margin is not None and s > ref - config.min_margin:
            dropped["scores near the positive (margin)"] += 1
            banned.add(c)
            continue
        kept.append(c)
    return kept
