"""Readers that produce chunks directly: court precedents, generic JSONL, BEIR corpora, text/Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lextune.ingest.structure import clean_text
from lextune.schema import Chunk, ChunkKind, DocKind

_HTML_BREAK = re.compile(r"<br\s*/?>", re.I)
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def strip_html(text: str) -> str:
    text = _HTML_BREAK.sub("\n", text or "")
    return _HTML_TAG.sub("", text)


def split_by_length(text: str, max_chars: int) -> list[str]:
    """Split at line breaks (then sentence ends) into pieces of at most ``max_chars`` characters."""
    if len(text) <= max_chars:
        return [text] if text.strip() else []
    pieces: list[str] = []
    current = ""
    units: list[str] = []
    for line in text.split("\n"):
        if len(line) <= max_chars:
            units.append(line)
            continue
        sentences = re.split(r"(?<=[.!?。])\s+", line)
        for s in sentences:
            units.extend(s[i : i + max_chars] for i in range(0, len(s), max_chars))
    for unit in units:
        if current and len(current) + 1 + len(unit) > max_chars:
            pieces.append(current)
            current = unit
        else:
            current = f"{current}\n{unit}" if current else unit
    if current.strip():
        pieces.append(current)
    return pieces


@dataclass
class DocOptions:
    prepend_title: bool = True
    max_chars: int = 1200
    precedent_body: bool = True


def make_chunk(cid: str, doc_id: str, kind: ChunkKind, title: str, text: str, opts: DocOptions, **kw) -> Chunk:
    """A chunk of a document, its breadcrumb put before the embedded text when ``opts`` asks for it."""
    contents = f"{title}\n{text}" if opts.prepend_title and title else text
    return Chunk(id=cid, doc_id=doc_id, kind=kind, title=title, text=text, contents=contents, **kw)


def parse_cited_provisions(text: str) -> list[dict]:
    """``[1] 형법 제355조 제1항, 제356조 / [2] ...`` -> [{law, article, paragraph, item, group, groups, old}, ...]
    through the one 참조조문 parser (:func:`lextune.ingest.refs.parse_reference_groups`); a ``(현행 … 참조)``
    note replaces the former provision, 부칙 and citations without a law are left out."""
    from lextune.ingest.refs import parse_reference_groups

    out: list[dict] = []
    for group in parse_reference_groups(strip_html(text or "")):
        for c in group.citations:
            cite = c.current if c.current is not None and c.current.law else c
            if cite.law is None or c.addendum:
                continue
            out.append({"law": cite.law, "article": cite.article, "paragraph": cite.paragraph, "item": cite.item,
                        "group": group.labels[0] if group.labels else None, "groups": group.labels,
                        "old": c.old and cite is c})
    return out


_PRECEDENT_TEXT_FIELDS = ("판례일련번호", "사건번호", "선고일자", "법원명", "판결유형", "사건명", "참조조문", "참조판례",
                          "판시사항", "판결요지", "판례내용", "판결본문")


def precedent_chunks(obj: dict, opts: DocOptions) -> list[Chunk]:
    """One court decision: 판시사항, 판결요지 and the body as separate chunks; 참조조문 parsed."""
    for key in _PRECEDENT_TEXT_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str) and not (
                key in ("판례일련번호", "선고일자") and isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"field {key!r} must be text, got {type(value).__name__}")
    pid = str(obj.get("판례일련번호") or obj.get("사건번호") or "").strip()
    if not pid:
        raise ValueError("missing field '판례일련번호'")
    doc_id = f"prec{pid}"
    date = str(obj.get("선고일자") or "")
    date_h = f"{date[:4]}. {int(date[4:6])}. {int(date[6:8])}." if re.fullmatch(r"\d{8}", date) else date
    case = " ".join(x for x in (obj.get("법원명"), date_h, "선고", obj.get("사건번호"), obj.get("판결유형")) if x)
    name = (obj.get("사건명") or "").strip()
    head = f"{case} [{name[:60]}]" if name else case
    cited = parse_cited_provisions(obj.get("참조조문") or "")
    base = {"doc_kind": DocKind.PRECEDENT, "law_name": head, "effective_date": date or None,
            "metadata": {"case_no": obj.get("사건번호"), "court": obj.get("법원명"), "cited_provisions": cited,
                         "cited_cases": strip_html(obj.get("참조판례") or "").strip() or None}}
    out: list[Chunk] = []
    for field_name, suffix, kind in (("판시사항", "issues", ChunkKind.PRECEDENT_ISSUES),
                                     ("판결요지", "holding", ChunkKind.PRECEDENT_HOLDING)):
        text, _ = clean_text(strip_html(obj.get(field_name) or ""))
        if text:
            out.append(make_chunk(f"{doc_id}:{suffix}", doc_id, kind, f"{head} > {field_name}", text, opts, **base))
    if opts.precedent_body:
        body, _ = clean_text(strip_html(obj.get("판례내용") or obj.get("판결본문") or ""))
        for i, piece in enumerate(split_by_length(body, opts.max_chars), start=1):
            out.append(make_chunk(f"{doc_id}:body{i}", doc_id, ChunkKind.PRECEDENT_BODY, f"{head} > 본문 {i}", piece, opts,
                              parent_id=doc_id, **base))
    return out


def record_chunks(obj: dict, *, id_field: str, text_field: str, title_field: str | None,
                  metadata_fields: list[str] | None, opts: DocOptions, doc_kind: DocKind = DocKind.DOCUMENT) -> list[Chunk]:
    """A generic JSONL record (or a BEIR corpus line) as one chunk, split when longer than max_chars."""
    rid = obj.get(id_field)
    if rid is None or isinstance(rid, bool) or not isinstance(rid, str | int):
        raise ValueError(f"missing or non-string field {id_field!r}")
    text = obj.get(text_field)
    if not isinstance(text, str):
        raise ValueError(f"missing or non-string field {text_field!r}")
    title = obj.get(title_field) if title_field else None
    title = title if isinstance(title, str) else ""
    keep = metadata_fields if metadata_fields is not None else [k for k in obj if k not in {id_field, text_field, title_field}]
    meta = {k: obj[k] for k in keep if k in obj}
    pieces = split_by_length(text, opts.max_chars) or [text]
    rid = str(rid)
    if len(pieces) == 1:
        return [make_chunk(rid, rid, ChunkKind.SECTION, title, pieces[0], opts, doc_kind=doc_kind, metadata=meta)]
    return [make_chunk(f"{rid}#{i}", rid, ChunkKind.SECTION, title, p, opts, parent_id=rid, doc_kind=doc_kind, metadata=meta)
            for i, p in enumerate(pieces, start=1)]


def text_document_chunks(text: str, doc_id: str, *, markdown: bool, opts: DocOptions) -> Iterator[Chunk]:
    """Plain text or Markdown (financial reports, terms and conditions): split by headings, then length."""
    sections: list[tuple[list[str], list[str]]] = [([], [])]
    path: list[str] = []
    for line in text.replace("\r", "").split("\n"):
        m = _MD_HEADING.match(line.strip()) if markdown else None
        if m:
            level = len(m.group(1))
            path = path[: level - 1] + [m.group(2).strip()]
            sections.append((list(path), []))
        else:
            sections[-1][1].append(line)
    n = 0
    for spath, lines in sections:
        body = "\n".join(lines).strip()
        body = re.sub(r"\n{3,}", "\n\n", body)
        for piece in split_by_length(body, opts.max_chars):
            n += 1
            title = " > ".join([doc_id, *spath])
            yield make_chunk(f"{doc_id}:s{n}", doc_id, ChunkKind.SECTION, title, piece.strip(), opts, path=spath)
