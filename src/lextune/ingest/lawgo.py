"""Readers for law.go.kr open-API JSON (statutes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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


def _item_lines(holder: dict) -> list[str]:
    lines: list[str] = []
    for ho in as_list(holder.get("호")):
        if text := flatten_text(ho.get("호내용")).strip():
            lines.append(text)
        for mok in as_list(ho.get("목")):
            if text := flatten_text(mok.get("목내용")).strip():
                lines.append(text)
    return lines


def iter_law_json_paragraph_texts(path: str | Path) -> Iterator[str]:
    """Plain paragraph texts of a statute: each 항 with its 호/목, or an article without 항 whole.

    A light reader (no ids, headers or metadata) used for model parity checks; the structured ingest
    builds chunks with ids and breadcrumbs.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    for art in as_list(data.get("법령", {}).get("조문", {}).get("조문단위")):
        if art.get("조문여부") != "조문":
            continue
        paragraphs = [p for p in as_list(art.get("항")) if isinstance(p, dict)]
        numbered = [p for p in paragraphs if p.get("항내용")]
        if numbered:
            for para in numbered:
                lines = [flatten_text(para.get("항내용")).strip(), *_item_lines(para)]
                yield "\n".join(line for line in lines if line)
        else:
            lines = [flatten_text(art.get("조문내용")).strip()]
            for para in paragraphs:
                lines.extend(_item_lines(para))
            yield "\n".join(line for line in lines if line)
