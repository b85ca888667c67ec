"""The shared structure of a Korean statute, and how it becomes chunks.

Every statute reader (law.go.kr JSON, legalize-kr Markdown, administrative-rule JSON) fills the same
:class:`LawDoc`; one chunker turns it into :class:`~lextune.schema.Chunk` records, so readers cannot
drift apart in ids, breadcrumbs or cleaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from lextune.errors import InputFormatError
from lextune.schema import Chunk, ChunkKind, DocKind

Unit = Literal["article", "paragraph", "item"]

CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳㉑㉒㉓㉔㉕㉖㉗㉘㉙㉚㉛㉜㉝㉞㉟㊱㊲㊳㊴㊵㊶㊷㊸㊹㊺㊻㊼㊽㊾㊿"
HEADING_RE = re.compile(r"^\s*제\s*(\d+)\s*(편|장|절|관)(?:의\s*(\d+))?\s*(.*)$")
HEADING_LEVEL = {"편": 0, "장": 1, "절": 2, "관": 3}
ARTICLE_HEAD_RE = re.compile(r"^\s*제\s*(\d+)(?:\s*-\s*(\d+))?\s*조(?:\s*의\s*(\d+))?")
# Amendment notes: <개정 2018.9.18>, <신설 2020. 5. 19.>, <2015.2.3> ... any <...> holding a date.
TAG_RE = re.compile(r"<[^<>]{0,200}?\d{4}\s*\.\s*\d{1,2}\s*\.\s*\d{1,2}\.?[^<>]{0,200}?>")
BRACKET_RE = re.compile(
    r"\[(?:본조신설|전문개정|제목개정|본조삭제|종전|시행일|단순위헌|헌법불합치|한정위헌|한정합헌|위헌|본조제목개정)[^\[\]]{0,300}\]"
)
DELETED_RE = re.compile(r"^\s*삭\s*제\s*\.?\s*$")
SPACE_RE = re.compile(r"[ \t\u00a0\u3000]+")


def article_citation(label: str) -> str:
    """"6의2" -> "제6조의2"; "1-2" -> "제1-2조"."""
    number, _, branch = label.partition("의")
    return f"제{number}조" + (f"의{branch}" if branch else "")


# A heading line of a passage that came without structure (a BEIR corpus, a markdown export):
# "상법 200조 2 직무대행자의 권한", "간접투자자산 운용업법 106조  (투자신탁의 합병)", "형법 제329조(절도)".
_HEADING_RE = re.compile(r"^(?P<law>\S.*?)\s+제?(?P<num>\d+)\s*조(?:\s*의?\s*(?P<sub>\d+)(?=\s|\(|$))?\s*"
                         r"(?:\((?P<paren>[^()]+(?:\([^()]*\)[^()]*)*)\)|(?P<bare>\S.*?))\s*$")


def parse_heading(title: str) -> tuple[str, str, str] | None:
    """(law name, article label like "6의2", article title) from a heading line, else None."""
    m = _HEADING_RE.match(title.strip())
    if m is None:
        return None
    article = m["num"] + (f"의{m['sub']}" if m["sub"] else "")
    return m["law"], article, (m["paren"] or m["bare"]).strip()


def circled_number(marker: str) -> int | None:
    """① -> 1 ... ㊿ -> 50; None for anything else."""
    idx = CIRCLED.find(marker.strip()[:1]) if marker.strip() else -1
    return idx + 1 if idx >= 0 else None


def clean_text(text: str) -> tuple[str, list[str]]:
    """Remove amendment tags (into the returned list) and normalise spaces, keeping line breaks."""
    tags: list[str] = []

    def take(m: re.Match) -> str:
        tags.append(m.group(0))
        return " "

    text = TAG_RE.sub(take, text)
    text = BRACKET_RE.sub(take, text)
    lines = [SPACE_RE.sub(" ", line).strip() for line in text.replace("\r", "").split("\n")]
    return "\n".join(line for line in lines if line), tags


def is_deleted(text: str) -> bool:
    """A provision whose text, once tags are removed, is only 삭제."""
    return bool(DELETED_RE.match(text))


@dataclass
class SubItem:  # 목
    label: str  # "가"
    text: str
    tags: list[str] = field(default_factory=list)


@dataclass
class Item:  # 호
    number: str  # "3", "2의2"
    text: str
    subitems: list[SubItem] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def full_text(self, drop_deleted: bool) -> str:
        lines = [self.text] + [s.text for s in self.subitems if not (drop_deleted and _deleted_line(s.text))]
        return "\n".join(t for t in lines if t)


@dataclass
class Paragraph:  # 항
    number: int | None  # None: an article without numbered paragraphs
    text: str  # the paragraph's own sentence(s), without its marker
    items: list[Item] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def full_text(self, drop_deleted: bool) -> str:
        lines = [self.text] + [
            i.full_text(drop_deleted) for i in self.items if not (drop_deleted and _deleted_line(i.text))
        ]
        return "\n".join(t for t in lines if t)


@dataclass
class Article:  # 조
    number: int
    branch: int | None  # 조의N
    title: str
    paragraphs: list[Paragraph] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    deleted: bool = False
    chapter: int | None = None  # administrative rules number articles per chapter: 제1-2조
    page: int | None = None  # where the article starts in a paged document (PDF)

    @property
    def number_label(self) -> str:
        return f"{self.chapter}-{self.number}" if self.chapter is not None else str(self.number)

    @property
    def label(self) -> str:
        return f"{self.number_label}의{self.branch}" if self.branch else self.number_label

    @property
    def key(self) -> str:
        base = f"a{self.chapter}_{self.number}" if self.chapter is not None else f"a{self.number}"
        return f"{base}-{self.branch}" if self.branch else base

    @property
    def heading(self) -> str:
        return article_citation(self.label) + (f"({self.title})" if self.title else "")


@dataclass
class Block:
    """A 부칙 or 별표: kept apart, flagged, excluded from the default unit set."""

    kind: Literal["addendum", "appendix"]
    key: str
    title: str
    text: str


@dataclass
class LawDoc:
    doc_id: str
    name: str
    kind: DocKind
    effective_date: str | None = None
    ministry: str | None = None
    articles: list[Article] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    source: str = ""
    metadata: dict = field(default_factory=dict)
    body: str = ""  # text of a law without articles (a single-provision or repealing act)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field path, message): units skipped


def _deleted_line(text: str) -> bool:
    body = re.sub(r"^\s*(?:\d+(?:의\d+)?\.|[가-힣]\.|\d+\))\s*", "", text)
    return is_deleted(body)


def doc_kind_from(label: str | None, name: str = "") -> DocKind:
    """Map law.go.kr's 법종구분 (법률, 대통령령, 총리령, ...부령) and the law's name to a DocKind."""
    label = (label or "").strip()
    if name.endswith("시행규칙") or label == "총리령" or label.endswith("부령"):
        return DocKind.RULE
    if name.endswith("시행령") or label == "대통령령":
        return DocKind.DECREE
    return DocKind.ACT


@dataclass
class ChunkOptions:
    unit: Unit = "paragraph"
    prepend_title: bool = True
    drop_deleted: bool = True
    include_addenda: bool = False
    include_appendices: bool = False


@dataclass
class ChunkStats:
    articles: int = 0
    deleted_dropped: int = 0
    blocks_skipped: int = 0


def law_chunks(doc: LawDoc, opts: ChunkOptions, stats: ChunkStats | None = None) -> list[Chunk]:
    """Turn a parsed statute into retrieval units (article, paragraph or item)."""
    stats = stats or ChunkStats()
    out: list[Chunk] = []
    base = {
        "doc_id": doc.doc_id, "law_name": doc.name, "doc_kind": doc.kind,
        "effective_date": doc.effective_date, "ministry": doc.ministry,
    }

    def make(cid: str, kind: ChunkKind, crumb: list[str], text: str, **kw) -> Chunk:
        title = " > ".join(c for c in crumb if c)
        contents = f"{title}\n{text}" if opts.prepend_title and title else text
        return Chunk(id=cid, kind=kind, title=title, text=text, contents=contents, **base, **kw)

    for art in doc.articles:
        if art.deleted and opts.drop_deleted:
            stats.deleted_dropped += 1
            continue
        stats.articles += 1
        art_id = f"{doc.doc_id}:{art.key}"
        crumb = [doc.name, *art.path, art.heading]
        meta = {**({"tags": art.tags} if art.tags else {}), **({"page": art.page} if art.page else {})}
        common = {"article": art.label, "path": list(art.path), "metadata": meta}
        paras = [p for p in art.paragraphs if not (opts.drop_deleted and is_deleted(p.text) and not p.items)]
        stats.deleted_dropped += len(art.paragraphs) - len(paras)
        numbered = any(p.number is not None for p in paras)
        if opts.unit == "article" or not numbered and opts.unit == "paragraph" or not paras:
            text = "\n".join(_para_line(p, opts.drop_deleted) for p in paras)
            para_tags = [t for p in paras for t in p.tags]
            if para_tags:
                common = {**common, "metadata": {**meta, "tags": [*art.tags, *para_tags]}}
            if opts.unit == "item" and any(p.items for p in paras):
                out.extend(_item_chunks(make, art_id, crumb, paras, common, opts))
                continue
            out.append(make(art_id, ChunkKind.ARTICLE, crumb, text, **common))
            continue
        for p in paras:
            pid = f"{art_id}:p{p.number}" if p.number is not None else art_id
            pcrumb = crumb[:-1] + [crumb[-1] + (f" {CIRCLED[p.number - 1]}" if p.number else "")]
            pcommon = {**common, "paragraph": p.number, "parent_id": art_id if pid != art_id else None}
            if p.tags:
                pcommon["metadata"] = {**pcommon["metadata"], "tags": [*common["metadata"].get("tags", []), *p.tags]}
            if opts.unit == "item" and p.items:
                out.extend(_item_chunks(make, art_id, crumb, [p], common, opts))
                continue
            out.append(make(pid, ChunkKind.PARAGRAPH, pcrumb, p.full_text(opts.drop_deleted), **pcommon))
    if not doc.articles and doc.body:
        out.append(make(f"{doc.doc_id}:body", ChunkKind.ARTICLE, [doc.name], doc.body))
    for block in doc.blocks:
        wanted = opts.include_addenda if block.kind == "addendum" else opts.include_appendices
        if not wanted:
            stats.blocks_skipped += 1
            continue
        kind = ChunkKind.ADDENDUM if block.kind == "addendum" else ChunkKind.APPENDIX
        out.append(make(f"{doc.doc_id}:{block.key}", kind, [doc.name, block.title], block.text, flags=[block.kind]))
    return out


def _para_line(p: Paragraph, drop_deleted: bool) -> str:
    body = p.full_text(drop_deleted)
    return f"{CIRCLED[p.number - 1]} {body}" if p.number else body


def _item_chunks(make, art_id: str, crumb: list[str], paras: list[Paragraph], common: dict, opts: ChunkOptions):
    """Item units: the paragraph's lead sentence as its own chunk, then one chunk per 호 (with its 목)."""
    out = []
    for p in paras:
        pid = f"{art_id}:p{p.number}" if p.number is not None else art_id
        marker = f" {CIRCLED[p.number - 1]}" if p.number else ""
        pcrumb = crumb[:-1] + [crumb[-1] + marker]
        pcommon = {**common, "paragraph": p.number, "parent_id": art_id if pid != art_id else None}
        if p.text:
            out.append(make(pid, ChunkKind.PARAGRAPH, pcrumb, p.text, **pcommon))
        for it in p.items:
            if opts.drop_deleted and _deleted_line(it.text):
                continue
            icrumb = crumb[:-1] + [crumb[-1] + marker + f" 제{it.number}호"]
            out.append(make(f"{pid}:i{it.number.replace('의', '-')}", ChunkKind.ITEM, icrumb,
                            it.full_text(opts.drop_deleted), **{**pcommon, "item": it.number, "parent_id": pid}))
    return out


class StructureError(InputFormatError, ValueError):
    """A law document does not have the expected structure (law.go.kr JSON fields, Markdown front matter); the
    message names the field."""


class PathTracker:
    """Current 편/장/절/관 headings while walking a law in order."""

    def __init__(self) -> None:
        self.levels: list[str | None] = [None, None, None, None]

    def update(self, heading: str) -> bool:
        m = HEADING_RE.match(heading)
        if not m:
            return False
        level = HEADING_LEVEL[m.group(2)]
        number = m.group(1) + (f"의{m.group(3)}" if m.group(3) else "")
        title = re.sub(r"\s+", " ", m.group(4)).strip()
        title = re.sub(r"\s*<[^>]*>\s*$", "", title)
        self.levels[level] = f"제{number}{m.group(2)} {title}".strip()
        for deeper in range(level + 1, 4):
            self.levels[deeper] = None
        return True

    @property
    def path(self) -> list[str]:
        return [h for h in self.levels if h]
