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

from lextune.ingest.structure import article_citation, circled_number, parse_heading
from lextune.lawnames import act_name, name_candidates, norm_name
from lextune.schema import Chunk, ChunkKind, DocKind, RefEdge

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


def heading_article(title: str | None) -> tuple[str, str, str] | None:
    """(law name, document key ``title:<name>``, article) of a passage without structure whose title names its
    article (``민법 406조 (채권자취소권)``), else None: how such passages are grouped by law and article."""
    found = parse_heading(title) if title and " > " not in title else None
    return (found[0], f"title:{norm_name(found[0])}", found[1]) if found else None


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
        # (doc id, article) -> the chunks of that article: (chunk id, paragraph, item)
        self.provisions: dict[tuple[str, str], list[tuple[str, int | None, str | None]]] = {}
        self._heading_para: dict[str, int | None] = {}
        for c in chunks:
            self.ids.add(c.id)
            if c.parent_id:
                self.ids.add(c.parent_id)
            if c.doc_kind == DocKind.PRECEDENT:
                continue
            if c.doc_kind == DocKind.DOCUMENT:
                self._add_heading_chunk(c)
                continue
            if c.article and c.kind not in ("addendum", "appendix"):
                self.provisions.setdefault((c.doc_id, c.article), []).append((c.id, c.paragraph, c.item))
            if c.law_name:
                self.by_name.setdefault(norm_name(c.law_name), c.doc_id)
                self.names[c.doc_id] = c.law_name
            if c.article:
                arts = self.articles.setdefault(c.doc_id, [])
                if not arts or arts[-1] != c.article:
                    arts.append(c.article)

    def _add_heading_chunk(self, c: Chunk) -> None:
        """A passage without structure whose title names its article (a BEIR corpus: '민법 406조 (채권자취소권)'),
        its paragraph from a leading ①②."""
        found = heading_article(c.title)
        if found is None:
            return
        law, doc_id, article = found
        self.by_name.setdefault(norm_name(law), doc_id)
        self.names.setdefault(doc_id, law)
        if c.parent_id and c.parent_id in self._heading_para:  # a later piece of a split passage
            para = self._heading_para[c.parent_id]
        else:
            para = circled_number(c.text.lstrip()[:1]) if c.text.strip() else None
            self._heading_para[c.parent_id or c.id] = para
        self.provisions.setdefault((doc_id, article), []).append((c.id, para, None))

    def as_provision(self, c: Chunk) -> Chunk | None:
        """A passage without structure seen as the provision its title names (law, document key, article and
        paragraph filled in), so that its citations resolve like a statute chunk's; None if its title names none."""
        found = heading_article(c.title)
        if found is None:
            return None
        law, doc_id, article = found
        para = self._heading_para.get(c.parent_id or c.id)
        return c.model_copy(update={"law_name": law, "doc_id": doc_id, "article": article, "paragraph": para})

    def provision(self, doc_id: str, article: str, paragraph: int | None = None,
                  item: str | None = None) -> tuple[list[str], str | None]:
        """Chunk ids of a cited provision, or no ids and why ('article missing', 'paragraph missing').
        An article-level citation gives every chunk of the article; a 항 its paragraph (제1항 of an article
        with unnumbered text: the article); a 호 its item chunk where items are chunks, else its paragraph."""
        members = self.provisions.get((doc_id, article))
        if not members:
            return [], "article missing"
        chosen = members
        if paragraph is not None:
            chosen = [m for m in members if m[1] == paragraph]
            if not chosen:
                if paragraph != 1 or any(m[1] is not None for m in members):
                    return [], "paragraph missing"
                chosen = members
        if item is not None:
            chosen = [m for m in chosen if m[2] == item] or [m for m in chosen if m[2] is None] or chosen
        return [m[0] for m in chosen], None

    def doc_for(self, name: str | None) -> str | None:
        """The document of a law name as cited (spacing, middle dots, aliases and former names tolerated)."""
        return self.lookup(name)[0]

    def lookup(self, name: str | None) -> tuple[str | None, str | None]:
        """(document id, how the name matched: 'name', 'alias' or 'rename'), or (None, None)."""
        if not name:
            return None, None
        return next(((self.by_name[k], how) for k, how in name_candidates(name) if k in self.by_name), (None, None))

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

    def targets(self, doc_id: str, article: str, para: int | None, item: str | None) -> list[tuple[str, str]]:
        """The chunks a citation points to, with their level: one id (a chunk or an article id) in an ingest of
        statutes; in passages grouped by their titles (a BEIR corpus), every passage of the cited article or
        the cited paragraph's passages. Empty: not found."""
        if not doc_id.startswith("title:"):
            hit = self.target(doc_id, article, para, item)
            return [hit] if hit else []
        ids, _why = self.provision(doc_id, article, para, item)
        level = "paragraph" if para is not None else "article"
        return [(i, level) for i in ids]


def _previous_article(index: RefIndex, doc_id: str, article: str | None) -> str | None:
    arts = index.articles.get(doc_id, [])
    if article in arts:
        i = arts.index(article)
        return arts[i - 1] if i > 0 else None
    return None


class _CitationWalker:
    """Reads one statute chunk's citations left to right, carrying the law, article and paragraph that a
    following 같은 조, 제N항, a list (제3조, 제5조) or a range (제3조부터 제5조까지) leaves implicit."""

    def __init__(self, chunk: Chunk, index: RefIndex, stats: RefStats) -> None:
        self.chunk, self.index, self.stats = chunk, index, stats
        self.name = chunk.law_name or ""
        self.act = act_name(self.name)
        self.edges: dict[str, RefEdge] = {}
        self.carried_law: str | None = None
        self.carried_doc: str | None = chunk.doc_id
        self.carried_art: str | None = None
        self.carried_para: int | None = None
        self.last_explicit: str | None = None
        self.prev_art_num: int | None = None

    def add(self, doc_id: str | None, law_label: str | None, art: str | None, para: int | None, item: str | None,
            citation: str) -> None:
        stats = self.stats
        stats.citations += 1
        if doc_id is None:
            stats.unresolved["law not in this ingest"] += 1
            return
        if art is None:
            stats.unresolved["no article in context"] += 1
            return
        hits = self.index.targets(doc_id, art, para, item)
        if not hits:
            stats.unresolved["provision not found"] += 1
            return
        stats.resolved += 1
        for target, level in hits:
            if target not in (self.chunk.id, self.chunk.parent_id):
                self.edges.setdefault(target, RefEdge(source=self.chunk.id, target=target, level=level,
                                                      citation=citation,
                                                      law=self.index.names.get(doc_id, law_label)))

    def previous_paragraph(self, rel: str) -> int | None:
        """전항: the paragraph before this chunk's; 같은 항 / 동항: the one carried."""
        if rel == "전항":
            return self.chunk.paragraph - 1 if self.chunk.paragraph else None
        return self.carried_para

    def solo(self, g: dict, citation: str, carried: bool) -> None:
        """A paragraph cited without an article (제2항, 전항, 같은 항): of the carried or this chunk's article."""
        chunk = self.chunk
        art = self.carried_art if carried and self.carried_art else chunk.article
        doc_id = self.carried_doc if carried else chunk.doc_id
        if g["srel"]:
            rel = re.sub(r"\s", "", g["srel"])
            para = self.previous_paragraph(rel)
            art = chunk.article if rel == "전항" else art
        else:
            para = int(g["spara"])
        item = g["sitem"] + (f"의{g['sibr']}" if g["sibr"] else "") if g["sitem"] else None
        if para is not None:
            self.add(doc_id, self.carried_law, art, para, item, citation)
            self.carried_para = para

    def law_of(self, g: dict, carried: bool, before: str) -> tuple[str | None, str | None]:
        """The law a citation's qualifier names (「상법」, 같은 법, 이 법, 법, 영, 규칙), carried in a list, or named
        bare just ``before`` it; else this chunk's law. Returns (label, document id)."""
        index, act = self.index, self.act
        if g["law"]:
            raw = re.sub(r"\s", "", g["law"])
            if g["lname"]:
                label = g["lname"].strip() + (f" {g['lsuf']}" if g["lsuf"] else "")
                self.last_explicit = g["lname"].strip()
            elif g["this_suf"]:
                label = f"{act} {g['this_suf']}"
            elif raw.startswith("같은법") or raw == "동법":
                base = self.last_explicit or self.carried_law or act
                label = f"{base} {g['same_suf']}" if g["same_suf"] else base
            elif raw in {"이법", "이영", "이규칙", "이규정"}:
                return self.name, self.chunk.doc_id
            elif raw == "법":
                label = act
            else:  # 영, 규칙
                label = f"{act} 시행령" if raw == "영" else f"{act} 시행규칙"
            return label, index.doc_for(label)
        if carried and self.carried_doc is not None:
            return self.carried_law, self.carried_doc
        bare = _BARE_LAW.search(before)
        if bare and not bare.group(1).endswith(("이법", "이영")) and norm_name(bare.group(1)) != norm_name(self.name):
            self.last_explicit = bare.group(1)
            return bare.group(1), index.doc_for(bare.group(1))
        return self.name, self.chunk.doc_id

    def cite(self, g: dict, citation: str, carried: bool, is_range: bool, before: str) -> None:
        """An article citation (with its law, paragraph and item), and the articles a range spans."""
        chunk = self.chunk
        law_label, doc_id = self.law_of(g, carried, before)
        if g["art"]:
            art = g["art"] + (f"의{g['br']}" if g["br"] else "")
        else:
            rel = re.sub(r"\s", "", g["rel_art"])
            if rel == "전조":
                art = _previous_article(self.index, chunk.doc_id, chunk.article)
                doc_id, law_label = chunk.doc_id, self.name
            elif rel == "이조":
                art, doc_id, law_label = chunk.article, chunk.doc_id, self.name
            else:  # 같은 조 / 동조
                art = self.carried_art or chunk.article
                doc_id, law_label = self.carried_doc or chunk.doc_id, self.carried_law or self.name
        if g["para"]:
            para: int | None = int(g["para"])
        elif g["rel_para"]:
            para = self.previous_paragraph(re.sub(r"\s", "", g["rel_para"]))
        else:
            para = None
        item = g["item"] + (f"의{g['ibr']}" if g["ibr"] else "") if g["item"] else None
        if is_range and g["art"] and not g["br"] and self.prev_art_num is not None and doc_id == self.carried_doc:
            end = int(g["art"])
            if 0 < end - self.prev_art_num <= 30:
                for k in range(self.prev_art_num + 1, end):
                    self.add(doc_id, law_label, str(k), None, None, citation)
        self.add(doc_id, law_label, art, para, item, citation)
        self.carried_law, self.carried_doc, self.carried_art, self.carried_para = law_label, doc_id, art, para
        self.prev_art_num = int(g["art"]) if g["art"] and not g["br"] else None


def chunk_refs(chunk: Chunk, index: RefIndex, stats: RefStats) -> list[RefEdge]:
    """Edges from one statute chunk to the provisions its text cites."""
    text = chunk.text
    walker = _CitationWalker(chunk, index, stats)
    last_end = -1
    for m in CITATION_RE.finditer(text):
        gap = text[last_end:m.start()] if last_end >= 0 else None
        continues = gap is not None and bool(_LIST_GAP.match(gap))
        is_range = gap is not None and bool(_RANGE_GAP.match(gap))
        if m.group("solo"):
            walker.solo(m.groupdict(), m.group(0), continues or is_range)
        else:
            walker.cite(m.groupdict(), m.group(0), continues or is_range, is_range, text[max(0, m.start() - 45):m.start()])
        last_end = m.end()
    return list(walker.edges.values())


def precedent_refs(chunk: Chunk, index: RefIndex, stats: RefStats) -> list[RefEdge]:
    """Edges from a precedent chunk to the provisions in its 참조조문."""
    edges: dict[str, RefEdge] = {}
    for cite in chunk.metadata.get("cited_provisions") or []:
        stats.citations += 1
        doc_id = index.doc_for(cite["law"])
        if doc_id is None:
            stats.unresolved["law not in this ingest"] += 1
            continue
        hits = index.targets(doc_id, cite["article"], cite.get("paragraph"), cite.get("item"))
        if not hits:
            stats.unresolved["provision not found"] += 1
            continue
        stats.resolved += 1
        for target, level in hits:
            edges.setdefault(target, RefEdge(source=chunk.id, target=target, level=level,
                                             citation=f"{cite['law']} {article_citation(cite['article'])}",
                                             law=cite["law"]))
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
        elif (view := index.as_provision(c)) is not None:  # a BEIR statute passage: '상법 제665조(…)'
            edges.extend(chunk_refs(view, index, stats))
    return edges, stats


def beir_chunks(corpus: dict[str, dict]) -> list[Chunk]:
    """A BEIR corpus as passages without structure, one per document, ids and indexed contents as
    :func:`~lextune.index.lexindex.docs_from_beir` makes them."""
    from lextune.index.lexindex import docs_from_beir

    return [Chunk(id=d["id"], doc_id=d["id"], kind=ChunkKind.SECTION, title=d["title"] or "", text=d["text"] or "",
                  contents=d["contents"]) for d in docs_from_beir(corpus)]


def linked_docs(chunks: list[Chunk]) -> tuple[list[dict], list[RefEdge]]:
    """Index input from chunks with each one's law and article (a passage without structure: those its title
    names), and the citations between them: what the pipeline's structure steps search with."""
    from lextune.index.lexindex import docs_from_chunks

    docs = docs_from_chunks(chunks)
    for d, c in zip(docs, chunks, strict=True):
        if c.law_name is None and (found := heading_article(c.title)) is not None:
            d["law"], d["article"] = found[0], found[2]
    return docs, resolve_refs(chunks)[0]


# -- 참조조문 of court decisions ----------------------------------------------------------------------
@dataclass
class Citation:
    """One provision cited in a decision's 참조조문. ``law`` is None when nothing before it named a law;
    ``old`` marks a former version (``구 …``); ``current`` is the provision a ``(현행 … 참조)`` note names."""

    law: str | None
    article: str
    paragraph: int | None = None
    item: str | None = None
    old: bool = False
    addendum: bool = False
    current: Citation | None = None
    text: str = ""


@dataclass
class CitationGroup:
    """The citations of one ``[1]`` / ``[1][2]`` group (``labels`` empty for an unlabelled one)."""

    labels: list[int]
    citations: list[Citation]


_GROUP_LABELS = re.compile(r"(?:[\[〔]\s*\d{1,3}\s*[\]〕]\s*,?\s*)+")
_LABEL_NUM = re.compile(r"\d+")
_UNIT = re.compile(
    r"제\s*(?P<art>\d+)\s*조(?:\s*의\s*(?P<br>\d+))?(?:\s*제\s*(?P<para>\d+)\s*항)?"
    r"(?:\s*제\s*(?P<item>\d+)\s*호(?:\s*의\s*(?P<ibr>\d+))?)?(?:\s*[가-하]\s*목)?"
    r"|제\s*(?P<spara>\d+)\s*항(?:\s*제\s*(?P<sitem>\d+)\s*호(?:\s*의\s*(?P<sibr>\d+))?)?"
    r"|제\s*(?P<oitem>\d+)\s*호(?:\s*의\s*(?P<oibr>\d+))?")
_RANGE_WORD = re.compile(r"^\s*(?:내지|부터|~|∼)\s*$")
_OLD_NOTE = re.compile(r"개정되기\s*전|폐지되기\s*전|전의\s*것|개정\s*전|시행\s*전")
_SAME_LAW = re.compile(r"^(?:같은\s*법|동법)\s*(?P<suf>시행령|시행규칙)?$")
_LAW_TEXT = re.compile(r"[가-힣A-Za-z0-9]")
_SUBITEM = re.compile(r"(?:^|(?<=[\s,]))(?:[가-하]\s*)?목(?=[\s,]|$)")
_APPENDIX_NOTE = re.compile(r"\[?\s*별표\s*\d*(?:\s*의\s*\d+)?\s*\]?")


def _split_parens(text: str) -> list[tuple[str, str]]:
    """('text', …) and ('paren', inner) pieces; ``(…)`` and ``[…]`` notes (group labels are gone by now) nest."""
    out: list[tuple[str, str]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in "([〔":
            if depth == 0:
                out.append(("text", text[start:i]))
                start = i + 1
            depth += 1
        elif ch in ")]〕" and depth:
            depth -= 1
            if depth == 0:
                out.append(("paren", text[start:i]))
                start = i + 1
    out.append(("text" if depth == 0 else "paren", text[start:]))
    return [(k, v) for k, v in out if v]


def _citation_groups(text: str) -> list[tuple[list[int], str]]:
    """A 참조조문 text split into (labels, body) groups at its ``[1]``/``〔1〕`` label runs."""
    from lextune.ingest.documents import strip_html

    text = strip_html(text)
    groups: list[tuple[list[int], str]] = []
    pos, labels = 0, []
    for m in _GROUP_LABELS.finditer(text):
        body = text[pos:m.start()]
        if body.strip(" /,") or labels:
            groups.append((labels, body))
        labels = [int(n) for n in _LABEL_NUM.findall(m.group(0))]
        pos = m.end()
    body = text[pos:]
    if body.strip(" /,") or labels:
        groups.append((labels, body))
    return groups


class _CitationReader:
    """Walks citations left to right, carrying the law, article and paragraph a bare ``제K항``/``제J호``,
    a ``같은 법`` or an empty prefix continue."""

    def __init__(self) -> None:
        self.law: str | None = None
        self.old = False
        self.addendum = False
        self.article: str | None = None
        self.paragraph: int | None = None
        self.prev_article: int | None = None

    def prefix(self, gap: str) -> None:
        """Text between two citations: a new law name, ``같은 법``, ``구 …``, ``부칙`` or separators."""
        words = _SUBITEM.sub(" ", _APPENDIX_NOTE.sub(" ", gap)).strip().strip(",/·ㆍ").strip()
        words = re.sub(r"^(?:및|또는|등)\s+", "", words).strip()
        if not words or not _LAW_TEXT.search(words) or _RANGE_WORD.match(words):
            return
        addendum = "부칙" in words
        words = words.split("부칙")[0].strip() if addendum else words
        if words:
            same = _SAME_LAW.match(words)
            if same:
                base = act_name(self.law) if self.law else None
                self.law = f"{base} {same['suf']}" if base and same["suf"] else base
            else:
                old = bool(re.match(r"^구\s+", words))
                self.law = re.sub(r"^구\s+", "", words).strip()
                self.old = old
            self.article = self.paragraph = None
        self.addendum = addendum

    def unit(self, m: re.Match, gap: str) -> list[Citation]:
        g = m.groupdict()
        out: list[Citation] = []
        if g["art"]:
            article = g["art"] + (f"의{g['br']}" if g["br"] else "")
            para = int(g["para"]) if g["para"] else None
            item = g["item"] + (f"의{g['ibr']}" if g["ibr"] else "") if g["item"] else None
            if (_RANGE_WORD.match(gap) and not g["br"] and self.prev_article is not None
                    and 0 < int(g["art"]) - self.prev_article <= 30):
                out += [self._make(str(k), None, None, "") for k in range(self.prev_article + 1, int(g["art"]))]
            self.prev_article = None if g["br"] else int(g["art"])
        elif g["spara"]:
            if self.article is None:
                return []
            article, para = self.article, int(g["spara"])
            item = g["sitem"] + (f"의{g['sibr']}" if g["sibr"] else "") if g["sitem"] else None
        else:
            if self.article is None:
                return []
            article, para = self.article, self.paragraph
            item = g["oitem"] + (f"의{g['oibr']}" if g["oibr"] else "")
        self.article, self.paragraph = article, para
        out.append(self._make(article, para, item, m.group(0)))
        return out

    def _make(self, article: str, para: int | None, item: str | None, text: str) -> Citation:
        law = self.law
        return Citation(law=law, article=article, paragraph=para, item=item, old=self.old, addendum=self.addendum,
                        text=f"{'구 ' if self.old else ''}{law or ''} {text or article_citation(article)}".strip())


def parse_reference_groups(text: str) -> list[CitationGroup]:
    """A decision's 참조조문 (``[1]형법 제355조 제1항,제356조 / [2]같은 법 제30조 …``) as labelled groups of
    citations. Handles bare ``제K항``/``제J호`` continuing the previous article, ``같은 법`` and an empty prefix
    (the previous law, also across groups), ``구 <법>(… 개정되기 전의 것)`` (flagged ``old``), a
    ``(현행 … 참조)`` note (``current``), ranges (``제3조 내지 제5조``) and ``부칙`` (flagged ``addendum``)."""
    reader = _CitationReader()
    groups: list[CitationGroup] = []
    for labels, body in _citation_groups(text):
        reader.addendum = False
        cites: list[Citation] = []
        gap = ""
        for kind, piece in _split_parens(body):
            if kind == "paren":
                if "현행" in piece:
                    inner = parse_reference_groups(re.sub(r"현행|참조", " ", piece))
                    found = [c for g in inner for c in g.citations]
                    if cites and found and not gap.strip(" ,"):
                        cites[-1].current = found[0]
                elif _OLD_NOTE.search(piece):
                    if gap.strip(" ,"):  # after a law name: that law as it was
                        reader.prefix(gap)
                        gap = ""
                        reader.old = True
                    elif cites:
                        cites[-1].old = True
                continue
            pos = 0
            for m in _UNIT.finditer(piece):
                gap += piece[pos:m.start()]
                reader.prefix(gap)
                cites.extend(reader.unit(m, gap))
                gap = ""
                pos = m.end()
            gap += piece[pos:]
        groups.append(CitationGroup(labels=labels, citations=cites))
    return groups
