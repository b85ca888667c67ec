"""Records that pass between stages, as named fields (JSONL on disk).

Every stage reads and writes these; nothing downstream relies on column positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DocKind(StrEnum):
    """What a source document is."""

    ACT = "법률"
    DECREE = "시행령"
    RULE = "시행규칙"
    ADMIN_RULE = "행정규칙"
    PRECEDENT = "판례"
    DOCUMENT = "document"


class ChunkKind(StrEnum):
    """What a retrieval unit covers."""

    ARTICLE = "article"
    PARAGRAPH = "paragraph"
    ITEM = "item"
    ADDENDUM = "addendum"  # 부칙
    APPENDIX = "appendix"  # 별표
    PRECEDENT_ISSUES = "precedent_issues"  # 판시사항
    PRECEDENT_HOLDING = "precedent_holding"  # 판결요지
    PRECEDENT_BODY = "precedent_body"  # 판례내용
    SECTION = "section"  # a part of a generic document


class Chunk(BaseModel):
    """One retrieval unit.

    ``text`` is the clean body; ``title`` the breadcrumb
    (``상법 > 제2편 상행위 > 제9장 운송업 > 제814조(운송인의 채권ㆍ채무의 소멸) ①``); ``contents`` is what
    gets embedded and indexed (the breadcrumb and the body, or the body alone, per ingest config).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    doc_id: str
    kind: ChunkKind
    title: str
    text: str
    contents: str
    parent_id: str | None = None
    law_name: str | None = None
    doc_kind: DocKind = DocKind.DOCUMENT
    effective_date: str | None = None
    ministry: str | None = None
    article: str | None = None  # "6의2"
    paragraph: int | None = None
    item: str | None = None  # "3" or "2의2"
    subitem: str | None = None  # "가"
    path: list[str] = Field(default_factory=list)  # 편/장/절/관 headings
    flags: list[str] = Field(default_factory=list)  # "addendum", "appendix"
    metadata: dict[str, Any] = Field(default_factory=dict)


class RefEdge(BaseModel):
    """A resolved cross-reference: ``source`` chunk cites ``target`` (a chunk or an article id). One line of
    ingest's ``refs.jsonl`` and of an index's (there every target is an indexed document)."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    level: str | None = None  # "article" | "paragraph" | "item" (an index written before it kept none)
    citation: str  # the text that was parsed, e.g. "「민법」 제750조"
    law: str | None = None


class TrainingExample(BaseModel):
    """One line of ``train.jsonl`` (written by ``lextune mine`` and the targeted pass, read by both trainers):
    a query, its positive passages and its negatives, with the miner's scores."""

    model_config = ConfigDict(extra="allow")  # e.g. the targeted pass's source_failure and category

    query_id: str | None = None
    query: str
    pos: list[str] = Field(min_length=1)
    neg: list[str] = Field(default_factory=list)
    pos_scores: list[float | None] = Field(default_factory=list)
    neg_scores: list[float | None] = Field(default_factory=list)
    neg_kinds: list[str] = Field(default_factory=list)  # hard | deeper | random | outranked
    pos_text: str | None = None  # the positive as the query's generator saw it (a precedent's own wording)


class IndexDoc(BaseModel):
    """One line of an index's ``docs.jsonl``: what a hit shows, and where it sits in a law."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str | None = None
    text: str | None = None
    contents: str
    parent_id: str | None = None
    law: str | None = None
    article: str | None = None
    kind: str | None = None  # the source's kind (법률, 시행령, 판례, document ...)
    document: str | None = None  # the source document's id (a law's id, a file's)


@dataclass
class SynthQuery:
    """A generated query: its text, positive chunks, generator (and its version) and source document."""

    id: str
    text: str
    positives: list[str]
    generator: str
    version: str
    source_doc: str
    metadata: dict = field(default_factory=dict)
    # Chunks that contain the query's own text without being its answer (a citing paragraph for its
    # citation query): evaluation does not count them and mining never picks them as negatives.
    ignore: list[str] = field(default_factory=list)


def read_training_examples(path: str | Path) -> list[TrainingExample]:
    """Every record of a ``train.jsonl``; a bad line is an error naming the file, the line and the field."""
    from lextune.jsonl import iter_records

    return [rec for _, rec in iter_records(path, TrainingExample)]
