"""Segments of a user's document into chunks: statute-like numbering feeds the statute structure, else
sections under the document's headings.

A 약관, 규정 or 지침 written as ``제1조(목적) …``, ``① …``, ``1. …``, ``가. …`` (with ``제1장 총칙`` headings) is
parsed into the same :class:`~lextune.ingest.structure.LawDoc` that statutes fill, so it gets articles,
paragraphs, items, breadcrumbs and reference resolution like a law. A document without such numbering is
cut into sections under its headings (and, in a paged format, never across a page), each split to
``max_chars``; every chunk of a paged document names its page (``metadata.page``).
"""

from __future__ import annotations

import re

from lextune.ingest.documents import DocOptions, make_chunk, split_by_length
from lextune.ingest.extract import Segment
from lextune.ingest.markdown_law import StatuteBuilder
from lextune.ingest.structure import CIRCLED, HEADING_RE, LawDoc, PathTracker, clean_text
from lextune.schema import Chunk, ChunkKind, DocKind

# 제1조(목적) text…, 제2조의2 (정의), or 제3조 alone on its line; not "제3조에 따라 …" (a reference).
ARTICLE_LINE = re.compile(r"^제\s*(\d+)\s*조(?:\s*의\s*(\d+))?\s*(?:\(([^()]{1,60})\)\s*(.*)|【([^【】]{1,60})】\s*(.*)|)$")
_PARA_LINE = re.compile(rf"^([{CIRCLED}])\s*(.*)$")
_SUBITEM_LINE = re.compile(r"^([가-하])\.\s*(.*)$")
MIN_ARTICLES = 2


def article_lines(segments: list[Segment]) -> int:
    """How many segments open an article (``제N조(제목)``)."""
    return sum(1 for s in segments if s.kind != "row" and ARTICLE_LINE.match(s.text))


def parse_text_law(segments: list[Segment], doc_id: str, name: str, kind: DocKind = DocKind.DOCUMENT) -> LawDoc | None:
    """The document as articles, paragraphs (①), items (1.) and 목 (가.) under 편/장/절/관 headings, with the
    page each article starts on; None when fewer than two article headings are found."""
    if article_lines(segments) < MIN_ARTICLES:
        return None
    doc = LawDoc(doc_id=doc_id, name=name, kind=kind, source=doc_id)
    tracker = PathTracker()
    builder = StatuteBuilder(doc)
    preamble: list[str] = []
    for seg in segments:
        text = seg.text.strip()
        if m := ARTICLE_LINE.match(text) if seg.kind != "row" else None:
            title = (m.group(3) or m.group(5) or "").strip()
            builder.start_article(int(m.group(1)), int(m.group(2)) if m.group(2) else None, title, tracker.path)
            builder.article.page = seg.page
            rest = (m.group(4) or m.group(6) or "").strip()
            if rest:
                builder.line(_as_markdown_line(rest))
            continue
        if HEADING_RE.match(text) and len(text) <= 80 and tracker.update(text):
            builder.finish_article()
            continue
        if builder.article is None:
            preamble.append(text)
            continue
        builder.line(_as_markdown_line(text))
    builder.finish_article()
    if preamble:
        doc.metadata["preamble"], _ = clean_text("\n".join(preamble))
    return doc


def _as_markdown_line(text: str) -> str:
    """A plain-text line in the shape the statute builder reads: ``**①** …`` paragraphs, indented 목."""
    if m := _PARA_LINE.match(text):
        return f"**{m.group(1)}** {m.group(2)}"
    if m := _SUBITEM_LINE.match(text):
        return f"    {m.group(1)}. {m.group(2)}"
    return text.replace("\\", "\\\\")


def section_chunks(segments: list[Segment], doc_id: str, name: str, opts: DocOptions) -> list[Chunk]:
    """Sections under the document's headings, never across a page, split to ``max_chars``."""
    out: list[Chunk] = []
    path: list[str] = []
    body: list[Segment] = []

    def flush() -> None:
        if not body:
            return
        page = body[0].page
        crumb = " > ".join([name, *path] + ([f"p. {page}"] if page else []))
        for piece in split_by_length("\n".join(s.text for s in body), opts.max_chars):
            meta = {"page": page} if page else {}
            out.append(make_chunk(f"{doc_id}:s{len(out) + 1}", doc_id, ChunkKind.SECTION, crumb, piece.strip(), opts,
                              law_name=name, path=list(path), metadata=meta))
        body.clear()

    for seg in segments:
        if seg.heading:
            flush()
            path = path[: seg.heading - 1] + [seg.text]
            continue
        if body and seg.page != body[-1].page:
            flush()
        body.append(seg)
    flush()
    return out
