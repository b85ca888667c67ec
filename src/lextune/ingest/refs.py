"""Cross-references: parse citations in provision text and resolve them to chunk ids of the same run.

Handles ``제3조제1항제2호``, ``제6조의2``, ``같은 조 제2항``, ``전조``, ``전항``, ``이 조``, lists and ranges
(``제5조 및 제7조``, ``제3조부터 제5조까지``, ``제643조 내지 제647조``), and law qualifiers:
``「민법」 제750조``, ``같은 법 제8조``, ``이 법 시행령 제12조``, in decrees and rules ``법 제8조`` (the
parent act) and ``영 제12조`` (the decree). Court precedents link through their parsed 참조조문.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from lextune.ingest.structure import article_citation
from lextune.schema import Chunk, DocKind, RefEdge

_LAW = (
    r"(?P<law>「(?P<lname>[^」]{1,100})」(?:\s*(?P<lsuf>시행령|시행규칙))?"
    r"|이\s*법\s*(?P<this_suf>시행령|시행규칙)"
    r"|같은\s*법\s*(?P<same_suf>시행령|시행규칙)|같은\s*법|동법"
    r"|이\s*법|이\s*영|이\s*규칙|이\s*규정"
    r"|(?<![가-힣])법(?=\s*제)|(?<![가-힣])영(?=\s*제)|(?<![가-힣])규칙(?=\s*제))"
)
_ART = r"(?:제\s*(?P<art>\d+)\s*조(?:\s*의\s*(?P<br>\d+))?|(?P<rel_art>같은\s*조|동조|전조|이\s*조))"
_PARA = r"(?:\s*(?:제\s*(?P<para>\d+)\s*항|(?P<rel_para>전항|같은\s*항|동항)))"
_ITEM = r"(?:\s*제\s*(?P<item>\d+)\s*호(?:\s*의\s*(?P<ibr>\d+))?)"
CITATION_RE = re.compile(
    rf"(?:{_LAW}\s*)?{_ART}{_PARA}?{_ITEM}?"
    rf"|(?P<solo>(?:제\s*(?P<spara>\d+)\s*항|(?P<srel>전항|같은\s*항|동항))){_ITEM.replace('item', 'sitem').replace('ibr', 'sibr')}?"
)
_LIST_GAP = re.compile(r"^\s*(?:,|ㆍ|·|및|또는|와|과|이나|나|그리고|\s)*\s*$")
_RANGE_GAP = re.compile(r"^\s*(?:부터|내지|~|∼)\s*$")
_BARE_LAW = re.compile(r"([가-힣ㆍ]{1,40}(?:법|법률|령|규칙|규정))\s*$")


def norm_name(name: str) -> str:
    return re.sub(r"[\s「」]", "", name)


def act_name(name: str) -> str:
    return re.sub(r"\s*(시행령|시행규칙)$", "", name)


@dataclass
class RefStats:
    citations: int = 0
    resolved: int = 0
    unresolved: Counter = field(default_factory=Counter)

    @property
    def share(self) -> float:
        return self.resolved / self.citations if self.citations else 0.0


class RefIndex:
    """What exists in this ingest run: law names, article order, chunk and parent ids."""

    def __init__(self, chunks: Iterable[Chunk]) -> None:
        self.ids: set[str] = set()
        self.by_name: dict[str, str] = {}
        self.articles: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}
        for c in chunks:
            self.ids.add(c.id)
            if c.parent_id:
                self.ids.add(c.parent_id)
            if c.doc_kind == DocKind.PRECEDENT or c.doc_kind == DocKind.DOCUMENT:
                continue
            if c.law_name:
                self.by_name.setdefault(norm_name(c.law_name), c.doc_id)
                self.names[c.doc_id] = c.law_name
            if c.article:
                arts = self.articles.setdefault(c.doc_id, [])
                if not arts or arts[-1] != c.article:
                    arts.append(c.article)

    def doc_for(self, name: str | None) -> str | None:
        return self.by_name.get(norm_name(name)) if name else None

    def target(self, doc_id: str, article: str, para: int | None, item: str | None) -> tuple[str, str] | None:
        art_id = f"{doc_id}:a{article.replace('의', '-')}"
        if art_id not in self.ids:
            return None
        if para is not None:
            pid = f"{art_id}:p{para}"
            if item is not None:
                for base in (pid, art_id):
                    iid = f"{base}:i{item.replace('의', '-')}"
                    if iid in self.ids:
                        return iid, "item"
            if pid in self.ids:
                return pid, "paragraph"
        elif item is not None:
            iid = f"{art_id}:i{item.replace('의', '-')}"
            if iid in self.ids:
                return iid, "item"
        return art_id, "article"


def _previous_article(index: RefIndex, doc_id: str, article: str | None) -> str | None:
    arts = index.articles.get(doc_id, [])
    if article in arts:
        i = arts.index(article)
        return arts[i - 1] if i > 0 else None
    return None


def chunk_refs(chunk: Chunk, index: RefIndex, stats: RefStats) -> list[RefEdge]:
    """Edges from one statute chunk to the provisions its text cites."""
    text = chunk.text
    name = chunk.law_name or ""
    act = act_name(name)
    edges: dict[str, RefEdge] = {}
    last_end = -1
    carried_law: str | None = None
    carried_doc: str | None = chunk.doc_id
    carried_art: str | None = None
    carried_para: int | None = None
    last_explicit: str | None = None
    prev_art_num: int | None = None

    def add(doc_id: str | None, law_label: str | None, art: str | None, para: int | None, item: str | None,
            citation: str) -> None:
        stats.citations += 1
        if doc_id is None:
            stats.unresolved["law not in this ingest"] += 1
            return
        if art is None:
            stats.unresolved["no article in context"] += 1
            return
        hit = index.target(doc_id, art, para, item)
        if hit is None:
            stats.unresolved["provision not found"] += 1
            return
        stats.resolved += 1
        target, level = hit
        if target in (chunk.id, chunk.parent_id):
            return
        edges.setdefault(target, RefEdge(source=chunk.id, target=target, level=level, citation=citation,
                                         law=index.names.get(doc_id, law_label)))

    for m in CITATION_RE.finditer(text):
        gap = text[last_end:m.start()] if last_end >= 0 else None
        continues = gap is not None and bool(_LIST_GAP.match(gap))
        is_range = gap is not None and bool(_RANGE_GAP.match(gap))
        g = m.groupdict()
        if g["solo"]:
            art = carried_art if (continues or is_range) and carried_art else chunk.article
            doc_id = carried_doc if (continues or is_range) else chunk.doc_id
            if g["srel"]:
                rel = re.sub(r"\s", "", g["srel"])
                para = (chunk.paragraph - 1 if chunk.paragraph else None) if rel == "전항" else carried_para
                art = chunk.article if rel == "전항" else art
            else:
                para = int(g["spara"])
            item = g["sitem"] + (f"의{g['sibr']}" if g["sibr"] else "") if g["sitem"] else None
            if para is not None:
                add(doc_id, carried_law, art, para, item, m.group(0))
                carried_para = para
            last_end = m.end()
            continue
        # law qualifier
        law_label: str | None = None
        doc_id: str | None
        if g["law"]:
            raw = re.sub(r"\s", "", g["law"])
            if g["lname"]:
                law_label = g["lname"].strip() + (f" {g['lsuf']}" if g["lsuf"] else "")
                last_explicit = g["lname"].strip()
                doc_id = index.doc_for(law_label)
            elif g["this_suf"]:
                law_label = f"{act} {g['this_suf']}"
                doc_id = index.doc_for(law_label)
            elif raw.startswith("같은법") or raw == "동법":
                base = last_explicit or carried_law or act
                law_label = f"{base} {g['same_suf']}" if g["same_suf"] else base
                doc_id = index.doc_for(law_label)
            elif raw in {"이법", "이영", "이규칙", "이규정"}:
                law_label, doc_id = name, chunk.doc_id
            elif raw == "법":
                law_label = act
                doc_id = index.doc_for(act)
            elif raw == "영":
                law_label = f"{act} 시행령"
                doc_id = index.doc_for(law_label)
            else:  # 규칙
                law_label = f"{act} 시행규칙"
                doc_id = index.doc_for(law_label)
        elif (continues or is_range) and carried_doc is not None:
            law_label, doc_id = carried_law, carried_doc
        else:
            bare = _BARE_LAW.search(text[max(0, m.start() - 45):m.start()])
            if bare and not bare.group(1).endswith(("이법", "이영")) and norm_name(bare.group(1)) != norm_name(name):
                law_label = bare.group(1)
                doc_id = index.doc_for(law_label)
                last_explicit = law_label
            else:
                law_label, doc_id = name, chunk.doc_id
        # article
        if g["art"]:
            art = g["art"] + (f"의{g['br']}" if g["br"] else "")
        else:
            rel = re.sub(r"\s", "", g["rel_art"])
            if rel == "전조":
                art = _previous_article(index, chunk.doc_id, chunk.article)
                doc_id, law_label = chunk.doc_id, name
            elif rel == "이조":
                art, doc_id, law_label = chunk.article, chunk.doc_id, name
            else:  # 같은 조 / 동조
                art = carried_art or chunk.article
                doc_id, law_label = carried_doc or chunk.doc_id, carried_law or name
        if g["para"]:
            para: int | None = int(g["para"])
        elif g["rel_para"]:
            rel = re.sub(r"\s", "", g["rel_para"])
            para = (chunk.paragraph - 1 if chunk.paragraph else None) if rel == "전항" else carried_para
        else:
            para = None
        item = g["item"] + (f"의{g['ibr']}" if g["ibr"] else "") if g["item"] else None
        if is_range and g["art"] and not g["br"] and prev_art_num is not None and doc_id == carried_doc:
            end = int(g["art"])
            if 0 < end - prev_art_num <= 30:
                for k in range(prev_art_num + 1, end):
                    add(doc_id, law_label, str(k), None, None, m.group(0))
        add(doc_id, law_label, art, para, item, m.group(0))
        carried_law, carried_doc, carried_art, carried_para = law_label, doc_id, art, para
        prev_art_num = int(g["art"]) if g["art"] and not g["br"] else None
        last_end = m.end()
    return list(edges.values())


def precedent_refs(chunk: Chunk, index: RefIndex, stats: RefStats) -> list[RefEdge]:
    """Edges from a precedent chunk to the provisions in its 참조조문."""
    edges: dict[str, RefEdge] = {}
    for cite in chunk.metadata.get("cited_provisions") or []:
        stats.citations += 1
        doc_id = index.doc_for(cite["law"])
        if doc_id is None:
            stats.unresolved["law not in this ingest"] += 1
            continue
        hit = index.target(doc_id, cite["article"], cite.get("paragraph"), None)
        if hit is None:
            stats.unresolved["provision not found"] += 1
            continue
        stats.resolved += 1
        edges.setdefault(hit[0], RefEdge(source=chunk.id, target=hit[0], level=hit[1],
                                         citation=f"{cite['law']} {article_citation(cite['article'])}", law=cite["law"]))
    return list(edges.values())


def resolve_refs(chunks: list[Chunk]) -> tuple[list[RefEdge], RefStats]:
    """All cross-reference edges of an ingest run, with counts of what could not be resolved."""
    index = RefIndex(chunks)
    stats = RefStats()
    edges: list[RefEdge] = []
    for c in chunks:
        if c.doc_kind == DocKind.PRECEDENT:
            edges.extend(precedent_refs(c, index, stats))
        elif c.doc_kind != DocKind.DOCUMENT and c.kind not in ("addendum", "appendix"):
            edges.extend(chunk_refs(c, index, stats))
    return edges, stats
