"""Reader for legalize-kr statute Markdown.

Layout: YAML front matter (제목, 법령ID, 법령구분, 소관부처, 시행일자, ...), then ``#`` headings for the
law, 편, 장, 절, 관 and ``##### 제N조 (제목)`` for articles; paragraphs as ``**①** text``, items as
indented ``1\\.`` lines, 목 as deeper ``가\\.`` lines; ``## 부칙`` starts the addenda.
"""

from __future__ import annotations

import re

import yaml

from lextune.ingest.structure import (
    CIRCLED,
    Article,
    Block,
    Item,
    LawDoc,
    Paragraph,
    PathTracker,
    StructureError,
    SubItem,
    circled_number,
    clean_text,
    doc_kind_from,
    is_deleted,
)

_ESCAPE_RE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")
_ARTICLE_RE = re.compile(r"^#{1,6}\s*제\s*(\d+)\s*조(?:\s*의\s*(\d+))?\s*(?:\((.*)\))?\s*$")
_HEADING_RE = re.compile(r"^(#{1,6})\s+(.*)$")
_PARA_RE = re.compile(rf"^\*\*([{CIRCLED}])\*\*\s*(.*)$")
_ITEM_RE = re.compile(r"^( {0,3})(\d+(?:의\d+)?)\.\s*(.*)$")
_SUB_RE = re.compile(r"^( {4,5})([가-힣])\.\s*(.*)$")
_MARKER_ESCAPE = re.compile(r"^(\s*)([0-9가-힣]+(?:의\d+)?|\d+\))\\\.")
_ADDENDUM_START = re.compile(r"^부칙\s*(?:\([^)]*\))?\s*<[^>]*>")


def unescape(text: str) -> str:
    return _ESCAPE_RE.sub(r"\1", text)


def _front_matter(text: str, source: str) -> tuple[dict, str]:
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        raise StructureError("front matter is not closed by '---'")
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise StructureError(f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise StructureError("front matter is not a mapping")
    return meta, text[end + 4:]


def _date(value) -> str | None:
    if value is None:
        return None
    return re.sub(r"\D", "", str(value)) or None


class StatuteBuilder:
    """Fills a LawDoc line by line: articles, ``**①**`` paragraphs, ``1.`` items, indented ``가.`` 목 (the shape of
    legalize-kr Markdown, and of plain-text documents rewritten into it by ``text_law``)."""

    def __init__(self, doc: LawDoc) -> None:
        self.doc = doc
        self.article: Article | None = None
        self.para: Paragraph | None = None
        self.item: Item | None = None
        self.sub: SubItem | None = None

    def start_article(self, number: int, branch: int | None, title: str, path: list[str]) -> None:
        self.finish_article()
        self.article = Article(number, branch, title, path=path)
        self.para = self.item = self.sub = None

    def finish_article(self) -> None:
        art = self.article
        if art is None:
            return
        for p in art.paragraphs:
            p.text, tags = clean_text(p.text)
            p.tags.extend(tags)
            for it in p.items:
                it.text, t2 = clean_text(it.text)
                it.tags.extend(t2)
                for s in it.subitems:
                    s.text, t3 = clean_text(s.text)
                    s.tags.extend(t3)
        if len(art.paragraphs) == 1 and art.paragraphs[0].number is None:
            only = art.paragraphs[0]
            art.deleted = is_deleted(only.text) and not only.items
        self.doc.articles.append(art)
        self.article = None

    def ensure_para(self) -> Paragraph:
        assert self.article is not None
        if self.para is None:
            self.para = Paragraph(None, "")
            self.article.paragraphs.append(self.para)
        return self.para

    def line(self, raw: str) -> None:
        if self.article is None:
            return
        raw = _MARKER_ESCAPE.sub(r"\1\2.", raw, count=1)
        if m := _PARA_RE.match(raw):
            self.para = Paragraph(circled_number(m.group(1)), unescape(m.group(2)))
            self.article.paragraphs.append(self.para)
            self.item = self.sub = None
        elif (m := _SUB_RE.match(raw)) and self.item is not None:
            self.sub = SubItem(m.group(2), f"{m.group(2)}. {unescape(m.group(3))}")
            self.item.subitems.append(self.sub)
        elif m := _ITEM_RE.match(raw):
            self.item = Item(m.group(2), f"{m.group(2)}. {unescape(m.group(3))}")
            self.ensure_para().items.append(self.item)
            self.sub = None
        else:
            text = unescape(raw.strip())
            if self.sub is not None:
                self.sub.text += "\n" + text
            elif self.item is not None:
                self.item.text += "\n" + text
            else:
                p = self.ensure_para()
                p.text = f"{p.text}\n{text}" if p.text else text


def parse_law_markdown(text: str, source: str = "") -> LawDoc:
    """One legalize-kr Markdown statute into a LawDoc."""
    meta, body = _front_matter(text, source)
    name = str(meta.get("제목") or "").strip()
    if not name:
        m = re.search(r"^#\s+(.+)$", body, re.M)
        if not m:
            raise StructureError("no 제목 in the front matter and no '# title' heading")
        name = m.group(1).strip()
    ministry = meta.get("소관부처")
    if isinstance(ministry, list):
        ministry = ", ".join(str(x) for x in ministry)
    doc = LawDoc(
        doc_id=str(meta.get("법령ID") or source).strip(),
        name=name,
        kind=doc_kind_from(str(meta.get("법령구분") or ""), name),
        effective_date=_date(meta.get("시행일자")),
        ministry=ministry,
        source=source,
        metadata={k: meta[k] for k in ("법령MST", "공포일자", "상태") if k in meta},
    )
    tracker = PathTracker()
    builder = StatuteBuilder(doc)
    addenda: list[list[str]] = []
    preamble: list[str] = []
    in_addenda = False
    for raw in body.split("\n"):
        stripped = raw.strip()
        if in_addenda:
            if _ADDENDUM_START.match(stripped) or not addenda:
                addenda.append([])
            if stripped:
                addenda[-1].append(unescape(stripped))
            continue
        if not stripped:
            continue
        if m := _ARTICLE_RE.match(stripped):
            title = (m.group(3) or "").strip()
            builder.start_article(int(m.group(1)), int(m.group(2)) if m.group(2) else None, title, tracker.path)
            continue
        if m := _HEADING_RE.match(stripped):
            heading = unescape(m.group(2).strip())
            if re.match(r"^부\s*칙", heading):
                builder.finish_article()
                in_addenda = True
            elif tracker.update(heading):
                builder.finish_article()
            continue
        if builder.article is None and not doc.articles:
            preamble.append(unescape(stripped))
            continue
        builder.line(raw.rstrip())
    builder.finish_article()
    if not doc.articles and preamble:
        doc.body, _ = clean_text("\n".join(preamble))
    for i, lines in enumerate(addenda, start=1):
        text, _ = clean_text("\n".join(lines))
        if text:
            doc.blocks.append(Block("addendum", f"add{i}", text.split("\n", 1)[0], text))
    return doc
