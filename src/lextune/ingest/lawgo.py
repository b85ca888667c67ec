"""Readers for law.go.kr open-API JSON: statutes and administrative rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lextune.ingest.structure import (
    ARTICLE_HEAD_RE,
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
from lextune.schema import DocKind


def as_list(value: Any) -> list:
    """law.go.kr gives one child as an object and several as a list; always return a list."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def flatten_text(value: Any) -> str:
    """Join the strings of a (possibly nested) list field, such as 목내용, into lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (flatten_text(v) for v in value) if t)
    return ""


def _is_text(value: Any) -> bool:
    """A text field of law.go.kr JSON: a string, or a (nested) list of strings, or absent."""
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, list) and all(_is_text(v) for v in value)


def _unit_problem(unit: dict) -> tuple[str, str] | None:
    """The first field of a 조문단위 whose value has the wrong type (relative path, message), or None."""
    def kind(v: Any) -> str:
        return type(v).__name__
    if not _is_text(unit.get("조문내용")):
        return "조문내용", f"expected text, got {kind(unit.get('조문내용'))}"
    if not isinstance(unit.get("조문제목") or "", str):
        return "조문제목", f"expected text, got {kind(unit.get('조문제목'))}"
    hangs = unit.get("항")
    if hangs not in (None, "") and not isinstance(hangs, dict | list):
        return "항", f"expected an object or a list of objects, got {kind(hangs)}"
    for j, h in enumerate(as_list(hangs)):
        if not isinstance(h, dict):
            return f"항[{j}]", f"expected an object, got {kind(h)}"
        if not _is_text(h.get("항내용")):
            return f"항[{j}].항내용", f"expected text, got {kind(h.get('항내용'))}"
        for k, ho in enumerate(as_list(h.get("호"))):
            if not isinstance(ho, dict) or not _is_text(ho.get("호내용")):
                return f"항[{j}].호[{k}]", "expected an object with text 호내용"
    return None


def _content(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _obj(value: Any, where: str) -> dict:
    """An object field (absent or empty: ``{}``); another type is a StructureError naming the field."""
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise StructureError(f"'{where}' must be an object, got {type(value).__name__}")
    return value


def _opt_text(value: Any, where: str) -> str | None:
    """A short text field such as a date or a ministry (a number is read as its digits)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise StructureError(f"'{where}' must be text, got {type(value).__name__}")
    return str(value)


def split_paren_title(rest: str) -> tuple[str, str]:
    """``(제목(괄호 포함)) 본문`` -> (제목, 본문); no leading parenthesis -> ("", rest)."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[1:i].strip(), rest[i + 1:].strip()
    return "", rest


def strip_article_header(text: str, title: str | None) -> str:
    """Remove the leading ``제N조의M(제목)`` from an article's text."""
    m = ARTICLE_HEAD_RE.match(text)
    if not m:
        return text
    rest = text[m.end():].lstrip()
    if title and rest.startswith(f"({title})"):
        return rest[len(title) + 2:].lstrip()
    return split_paren_title(rest)[1]


def _marker_strip(text: str, pattern: str) -> str:
    return re.sub(pattern, "", text, count=1)


def _items(holder: dict) -> list[Item]:
    items: list[Item] = []
    for ho in as_list(holder.get("호")):
        if not isinstance(ho, dict):
            continue
        raw = flatten_text(ho.get("호내용"))
        text, tags = clean_text(raw)
        number = str(ho.get("호번호") or "").strip().rstrip(".").replace(" ", "")
        if not number:
            m = re.match(r"\s*(\d+(?:의\d+)?)\.", raw)
            number = m.group(1) if m else str(len(items) + 1)
        subs = []
        for mok in as_list(ho.get("목")):
            if not isinstance(mok, dict):
                continue
            mtext, mtags = clean_text(flatten_text(mok.get("목내용")))
            label = str(mok.get("목번호") or "").strip().rstrip(".")
            subs.append(SubItem(label, mtext, mtags))
        items.append(Item(number, text, subs, tags))
    return items


def parse_law_json(data: dict, source: str = "") -> LawDoc:
    """Statute JSON (``법령.기본정보``, ``법령.조문.조문단위``, ``법령.부칙``) into a LawDoc."""
    law = data.get("법령")
    if not isinstance(law, dict):
        raise StructureError("missing object '법령'")
    info = _obj(law.get("기본정보"), "법령.기본정보")
    name = info.get("법령명_한글")
    if not isinstance(name, str) or not name.strip():
        raise StructureError("missing field '법령.기본정보.법령명_한글'" if not name else
                             f"'법령.기본정보.법령명_한글' must be text, got {type(name).__name__}")
    name = name.strip()
    law_id = info.get("법령ID")
    if law_id not in (None, "") and (isinstance(law_id, bool) or not isinstance(law_id, str | int)):
        raise StructureError(f"'법령.기본정보.법령ID' must be a string or a number, got {type(law_id).__name__}")
    doc = LawDoc(
        doc_id=str(law_id or Path(source).stem),
        name=name,
        kind=doc_kind_from(_content(info.get("법종구분")), name),
        effective_date=_opt_text(info.get("시행일자"), "법령.기본정보.시행일자"),
        ministry=_content(info.get("소관부처")),
        source=source,
    )
    tracker = PathTracker()
    units = _obj(law.get("조문"), "법령.조문").get("조문단위")
    for i, unit in enumerate(as_list(units)):
        where = f"법령.조문.조문단위[{i}]"
        if not isinstance(unit, dict):
            doc.problems.append((where, f"expected an object, got {type(unit).__name__} (unit skipped)"))
            continue
        problem = _unit_problem(unit)
        if problem:
            doc.problems.append((f"{where}.{problem[0]}", f"{problem[1]} (unit skipped)"))
            continue
        body = flatten_text(unit.get("조문내용"))
        if unit.get("조문여부") == "전문":
            tracker.update(body.strip())
            continue
        try:
            number = int(str(unit.get("조문번호")).strip())
        except ValueError as exc:
            raise StructureError(f"조문번호 {unit.get('조문번호')!r} is not a number") from exc
        branch_raw = str(unit.get("조문가지번호") or "").strip()
        branch = int(branch_raw) if branch_raw.isdigit() and int(branch_raw) > 0 else None
        title = (unit.get("조문제목") or "").strip()
        art_text, tags = clean_text(strip_article_header(body.strip(), title))
        ref = unit.get("조문참고자료")
        if ref:
            tags.extend(clean_text(flatten_text(ref))[1] or [flatten_text(ref)])
        art = Article(number, branch, title, path=tracker.path, tags=tags)
        hangs = [h for h in as_list(unit.get("항")) if isinstance(h, dict)]
        numbered = [h for h in hangs if h.get("항내용")]
        if numbered:
            for h in numbered:
                raw = flatten_text(h.get("항내용")).strip()
                num = circled_number(str(h.get("항번호") or raw[:1])) or circled_number(raw[:1])
                ptext, ptags = clean_text(_marker_strip(raw, f"^[{CIRCLED}]\\s*"))
                art.paragraphs.append(Paragraph(num, ptext, _items(h), ptags))
        else:
            items = [it for h in hangs for it in _items(h)]
            art.paragraphs.append(Paragraph(None, art_text, items))
            art.deleted = is_deleted(art_text) and not items
        doc.articles.append(art)
    for i, add in enumerate(as_list(_obj(law.get("부칙"), "법령.부칙").get("부칙단위")), start=1):
        if not isinstance(add, dict):
            continue
        text, _ = clean_text(flatten_text(add.get("부칙내용")))
        title = text.split("\n", 1)[0] if text else f"부칙 {i}"
        doc.blocks.append(Block("addendum", f"add{i}", title, text))
    return doc


_ITEM_SPLIT = re.compile(r"(?:(?<=\s)|^)(\d{1,3}(?:의\d+)?)\.\s+(?=[^\d\s])")
_SUB_SPLIT = re.compile(r"(?:(?<=\s)|^)([가나다라마바사아자차카타파하])\.\s+")


def _split_sequence(text: str, pattern: re.Pattern, first: str, expect) -> list[tuple[str, int, int]]:
    """Find markers of a numbered list that really count up (1., 2., ... or 가., 나., ...)."""
    hits: list[tuple[str, int, int]] = []
    for m in pattern.finditer(text):
        label = m.group(1)
        if not hits and label != first:
            continue
        if hits and not expect(hits[-1][0], label):
            continue
        hits.append((label, m.start(), m.end()))
    return hits


def _next_number(prev: str, label: str) -> bool:
    p, n = prev.split("의")[0], label.split("의")[0]
    return int(n) == int(p) + 1 or (n == p and "의" in label)


_HANGUL_ORDER = "가나다라마바사아자차카타파하"


def _next_letter(prev: str, label: str) -> bool:
    return _HANGUL_ORDER.find(label) == _HANGUL_ORDER.find(prev) + 1


def split_inline_items(text: str) -> tuple[str, list[Item]]:
    """Administrative rules keep 호/목 inline: ``... 다음 각호와 같다. 1. ... 2. ...``."""
    hits = _split_sequence(text, _ITEM_SPLIT, "1", _next_number)
    if not hits:
        return text, []
    lead = text[: hits[0][1]].strip()
    items = []
    for k, (label, start, _end) in enumerate(hits):
        stop = hits[k + 1][1] if k + 1 < len(hits) else len(text)
        chunk = text[start:stop].strip()
        subs_hits = _split_sequence(chunk, _SUB_SPLIT, "가", _next_letter)
        subs = []
        head = chunk
        if subs_hits:
            head = chunk[: subs_hits[0][1]].strip()
            for j, (sl, ss, _se) in enumerate(subs_hits):
                se = subs_hits[j + 1][1] if j + 1 < len(subs_hits) else len(chunk)
                subs.append(SubItem(sl, chunk[ss:se].strip()))
        items.append(Item(label, head, subs))
    return lead, items


def parse_admin_rule_json(data: dict, source: str = "") -> LawDoc:
    """Administrative-rule JSON (``AdmRulService``): articles as strings with inline ①/1./가."""
    svc = data.get("AdmRulService")
    if not isinstance(svc, dict):
        raise StructureError("missing object 'AdmRulService'")
    info = _obj(svc.get("행정규칙기본정보"), "AdmRulService.행정규칙기본정보")
    name = (_opt_text(info.get("행정규칙명"), "AdmRulService.행정규칙기본정보.행정규칙명") or "").strip()
    if not name:
        raise StructureError("missing field 'AdmRulService.행정규칙기본정보.행정규칙명'")
    where = "AdmRulService.행정규칙기본정보."
    doc = LawDoc(
        doc_id=f"adm{_opt_text(info.get('행정규칙ID'), where + '행정규칙ID') or Path(source).stem}",
        name=name,
        kind=DocKind.ADMIN_RULE,
        effective_date=_opt_text(info.get("시행일자"), where + "시행일자"),
        ministry=_opt_text(info.get("소관부처명"), where + "소관부처명"),
        source=source,
        metadata={"rule_type": _opt_text(info.get("행정규칙종류"), where + "행정규칙종류")},
    )
    tracker = PathTracker()
    circled_split = re.compile(f"(?:(?<=\\s)|^)([{CIRCLED}])")
    if not _is_text(svc.get("조문내용")):
        raise StructureError(f"'AdmRulService.조문내용' must be text, got {type(svc.get('조문내용')).__name__}")
    for text in _admin_rule_units(svc.get("조문내용")):
        m = ARTICLE_HEAD_RE.match(text)
        if not m:
            tracker.update(text)
            continue
        if m.group(2):  # 제1-2조: chapter 1, article 2
            chapter, number = int(m.group(1)), int(m.group(2))
        else:
            chapter, number = None, int(m.group(1))
        branch = int(m.group(3)) if m.group(3) else None
        title, rest = split_paren_title(text[m.end():].lstrip())
        body, tags = clean_text(rest)
        body = body.replace("\n", " ")
        art = Article(number, branch, title, path=tracker.path, tags=tags, chapter=chapter)
        seq = []
        for mm in circled_split.finditer(body):
            if circled_number(mm.group(1)) == len(seq) + 1:
                seq.append(mm)
        if seq:
            lead0 = body[: seq[0].start()].strip()
            for k, mm in enumerate(seq):
                stop = seq[k + 1].start() if k + 1 < len(seq) else len(body)
                lead, items = split_inline_items(body[mm.end():stop].strip())
                if k == 0 and lead0:
                    lead = f"{lead0} {lead}".strip()
                art.paragraphs.append(Paragraph(k + 1, lead, items))
        else:
            lead, items = split_inline_items(body)
            art.paragraphs.append(Paragraph(None, lead, items))
            art.deleted = is_deleted(lead.replace(" ", "")) and not items
        doc.articles.append(art)
    add = _obj(svc.get("부칙"), "AdmRulService.부칙")
    for i, text in enumerate(as_list(add.get("부칙내용")), start=1):
        body, _ = clean_text(flatten_text(text))
        if body:
            doc.blocks.append(Block("addendum", f"add{i}", body.split("\n", 1)[0][:60], body))
    for i, tbl in enumerate(as_list(_obj(svc.get("별표"), "AdmRulService.별표").get("별표단위")), start=1):
        if not isinstance(tbl, dict):
            continue
        body, _ = clean_text(flatten_text(tbl.get("별표내용")))
        number = str(tbl.get("별표번호") or i).strip()
        label = str(int(number)) if number.isdigit() else number
        heading = tbl.get("별표제목") if isinstance(tbl.get("별표제목"), str) else ""
        title = f"별표 {label} {heading}".strip()
        if body:
            doc.blocks.append(Block("appendix", f"t{i}", title, body))
    return doc


_RULE_ARTICLE_START = re.compile(r"(?:(?<=\s)|^)(?=제\s*\d+(?:\s*-\s*\d+)?\s*조(?:\s*의\s*\d+)?\s*\()")
_RULE_HEADING_TAIL = re.compile(r"\s(제\s*\d+\s*(?:편|장|절|관)\s+\S[^.。]{0,60})$")


def _admin_rule_units(value: Any) -> Iterator[str]:
    """Article and heading strings of an administrative rule. Most rules give a list of them; rules
    without article form (조문형식여부 N) give one string that we split at ``제N조(`` / ``제N-M조(``."""
    for raw in as_list(value):
        text = flatten_text(raw).strip()
        if not text:
            continue
        parts = [p.strip() for p in _RULE_ARTICLE_START.split(text) if p.strip()]
        if len(parts) <= 1:
            yield text
            continue
        for part in parts:
            m = _RULE_HEADING_TAIL.search(part)
            head = None
            if m and ARTICLE_HEAD_RE.match(part):
                head, part = m.group(1), part[: m.start()].strip()
            yield part
            if head:
                yield head


def load_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def iter_law_json_paragraph_texts(path: str | Path) -> Iterator[str]:
    """Raw paragraph texts of a statute (tags kept), for model parity checks: each 항 with its 호/목,
    or an article without 항 whole."""
    data = load_json(Path(path))
    for art in as_list(data.get("법령", {}).get("조문", {}).get("조문단위")):
        if art.get("조문여부") != "조문":
            continue
        paragraphs = [p for p in as_list(art.get("항")) if isinstance(p, dict)]
        numbered = [p for p in paragraphs if p.get("항내용")]
        groups = numbered or [None]
        for para in groups:
            lines = [flatten_text(para.get("항내용")).strip()] if para else [flatten_text(art.get("조문내용")).strip()]
            for holder in [para] if para else paragraphs:
                for ho in as_list(holder.get("호")):
                    lines.append(flatten_text(ho.get("호내용")).strip())
                    lines.extend(flatten_text(m.get("목내용")).strip() for m in as_list(ho.get("목")))
            yield "\n".join(line for line in lines if line)


def law_paragraphs(folder: str | Path) -> list[str]:
    """Every paragraph text of the law.go.kr JSON statutes in ``folder`` (sorted by file name): model parity."""
    texts: list[str] = []
    for path in sorted(Path(folder).glob("*.json")):
        texts.extend(t for t in iter_law_json_paragraph_texts(path) if t.strip())
    return texts
