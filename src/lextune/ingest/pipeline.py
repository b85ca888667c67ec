"""``ingest``: sources in, ``chunks.jsonl`` + ``refs.jsonl`` + ``meta.json`` out (atomically).

Sources are files, folders or tar archives; each file goes to the reader its suffix names in one registry
(``READERS``: law.go.kr statute and administrative-rule JSON, legalize-kr Markdown, precedent JSONL, BEIR
corpus, generic JSONL, Markdown and text, and the user's own PDF, DOCX, HWPX, HWP 5 and HTML), which checks
the file's first bytes where the format has a signature. A bad file or line is reported with its path and
position and the rest is still ingested (``strict`` stops at the first).
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lextune.artifacts import atomic_dir, make_meta, summary_dict, write_json_atomic
from lextune.config import save_config
from lextune.errors import InputFormatError, LextuneError
from lextune.ingest import extract
from lextune.ingest.documents import DocOptions, precedent_chunks, record_chunks, text_document_chunks
from lextune.ingest.extract import Extracted
from lextune.ingest.lawgo import parse_admin_rule_json, parse_law_json
from lextune.ingest.markdown_law import parse_law_markdown
from lextune.ingest.refs import resolve_refs
from lextune.ingest.structure import ChunkOptions, ChunkStats, LawDoc, StructureError, law_chunks
from lextune.ingest.text_law import parse_text_law, section_chunks
from lextune.schema import Chunk, DocKind

ARCHIVES = (".tar.gz", ".tgz", ".tar")


class IngestConfig(BaseModel):
    """How documents become chunks."""

    model_config = ConfigDict(extra="forbid")

    unit: Literal["article", "paragraph", "item"] = "paragraph"
    prepend_title: bool = Field(True, description="Put the breadcrumb before the text that gets embedded.")
    drop_deleted: bool = True
    include_addenda: bool = False
    include_appendices: bool = False
    precedent_body: bool = True
    max_chars: int = Field(1200, ge=100, description="Split documents and precedent bodies beyond this.")
    id_field: str = "id"
    title_field: str | None = "title"
    text_field: str = "text"
    metadata_fields: list[str] | None = None
    resolve_refs: bool = True
    strict: bool = False


@dataclass
class IngestError:
    path: str
    position: str | None
    message: str


@dataclass
class IngestSummary:
    files: int = 0
    documents: Counter = field(default_factory=Counter)  # by doc kind
    articles: int = 0
    chunks: Counter = field(default_factory=Counter)  # by chunk kind
    deleted_dropped: int = 0
    blocks_skipped: int = 0
    duplicate_ids: int = 0
    refs: int = 0
    citations: int = 0
    citations_resolved: int = 0
    unresolved: Counter = field(default_factory=Counter)
    needs_ocr: dict[str, list[int]] = field(default_factory=dict)  # file -> pages without a text layer
    errors: list[IngestError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total_chunks(self) -> int:
        return sum(self.chunks.values())

    def to_dict(self) -> dict:
        d = summary_dict(self)
        d["errors"] = [asdict(e) for e in self.errors[:200]]
        d["error_count"] = len(self.errors)
        d["total_chunks"] = self.total_chunks
        d["ref_share_resolved"] = self.citations_resolved / self.citations if self.citations else None
        return d


@dataclass
class Source:
    """One readable unit: a file, or a member of an archive."""

    name: str
    suffix: str
    read_bytes: Callable[[], bytes]


def _suffix(name: str) -> str:
    lower = name.lower()
    for s in sorted((*ARCHIVES, *SUFFIX_READER), key=len, reverse=True):  # .jsonl.gz before .gz
        if lower.endswith(s):
            return s
    return Path(lower).suffix


def iter_sources(paths: list[str | Path]) -> Iterator[Source]:
    """Files (folders recursively, archives member by member) in a stable order."""
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise InputFormatError("no such file or folder", path=str(p))
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            suffix = _suffix(f.name)
            if suffix in ARCHIVES:
                yield from _archive_sources(f)
            elif suffix in SUFFIX_READER:
                yield Source(str(f), suffix, f.read_bytes)


def _archive_sources(path: Path) -> Iterator[Source]:
    # Stream members in archive order: a compressed tar cannot seek backwards cheaply.
    with tarfile.open(path, mode="r|*") as tar:
        for m in tar:
            if m.isfile() and _suffix(m.name) in SUFFIX_READER:
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                yield Source(f"{path}!{m.name}", _suffix(m.name), lambda d=data: d)


# -- readers ------------------------------------------------------------------------------------
Reader = Callable[[Source, IngestConfig, "IngestSummary"], Iterator[LawDoc | Chunk]]


@dataclass(frozen=True)
class ReaderSpec:
    """One entry of the reader registry: the suffixes it reads and the first bytes its format starts with
    (none: any), checked before the reader runs."""

    name: str
    suffixes: tuple[str, ...]
    read: Reader
    magic: tuple[bytes, ...] = ()


READERS: dict[str, ReaderSpec] = {}
SUFFIX_READER: dict[str, str] = {}


def reader(name: str, suffixes: tuple[str, ...], magic: tuple[bytes, ...] = ()):
    """Register a reader for files ending in ``suffixes`` (adding a format touches this one place)."""
    def register(fn: Reader) -> Reader:
        READERS[name] = ReaderSpec(name, suffixes, fn, magic)
        SUFFIX_READER.update(dict.fromkeys(suffixes, name))
        return fn
    return register


def read_source(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
    """What the source's reader makes of it, after its signature is checked."""
    spec = READERS[SUFFIX_READER[source.suffix]]
    if spec.magic:
        data = source.read_bytes()  # once: the reader gets these bytes, not a second read of the file
        if not data:
            raise InputFormatError("empty file", path=source.name)
        if not data.startswith(spec.magic):
            raise InputFormatError(f"not a {spec.name.upper()} file (it starts with {data[:8]!r})", path=source.name)
        source = Source(source.name, source.suffix, lambda: data)
    return spec.read(source, cfg, summary)


def _text(source: Source) -> str:
    data = source.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"invalid UTF-8 at byte {exc.start}", path=source.name) from exc


def _json(source: Source) -> dict:
    text = _text(source)
    if not text.strip():
        raise InputFormatError("empty file", path=source.name)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"not valid JSON ({exc.msg})", path=source.name, line=exc.lineno) from exc
    if not isinstance(data, dict):
        raise InputFormatError("expected a JSON object at the top level", path=source.name)
    return data


@reader("json", (".json",))
def read_json(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
    data = _json(source)
    if "법령" in data:
        yield parse_law_json(data, source.name)
    elif "AdmRulService" in data:
        yield parse_admin_rule_json(data, source.name)
    else:
        keys = ", ".join(list(data)[:5])
        raise InputFormatError(f"unknown JSON layout (top-level keys: {keys}); expected 법령 or AdmRulService",
                               path=source.name)


def _doc_opts(cfg: IngestConfig) -> DocOptions:
    return DocOptions(prepend_title=cfg.prepend_title, max_chars=cfg.max_chars, precedent_body=cfg.precedent_body)


@reader("jsonl", (".jsonl", ".jsonl.gz"))
def read_jsonl(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
    import gzip

    data = source.read_bytes()
    if source.suffix == ".jsonl.gz":
        data = gzip.decompress(data)
    opts = _doc_opts(cfg)
    layout: str | None = None
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InputFormatError(f"invalid UTF-8 at byte {exc.start}", path=source.name, line=lineno) from exc
            except json.JSONDecodeError as exc:
                raise InputFormatError(f"not valid JSON ({exc.msg})", path=source.name, line=lineno) from exc
            if not isinstance(obj, dict):
                raise InputFormatError("expected a JSON object", path=source.name, line=lineno)
            if layout is None:
                layout = "precedent" if ("판시사항" in obj or "판례일련번호" in obj) else "beir" if "_id" in obj else "generic"
            try:
                if layout == "precedent":
                    yield from precedent_chunks(obj, opts)
                elif layout == "beir":
                    yield from record_chunks(obj, id_field="_id", text_field="text", title_field="title",
                                             metadata_fields=None, opts=opts)
                else:
                    yield from record_chunks(obj, id_field=cfg.id_field, text_field=cfg.text_field,
                                             title_field=cfg.title_field, metadata_fields=cfg.metadata_fields,
                                             opts=opts)
            except ValueError as exc:
                raise InputFormatError(str(exc), path=source.name, line=lineno) from exc
        except InputFormatError as err:
            if cfg.strict:
                raise
            summary.errors.append(IngestError(source.name, f"line {lineno}", str(err).split(": ", 1)[-1]))


_LAW_MD_HINT = re.compile(r"^(?:법령ID|법령구분):|^#{1,6}\s*제\s*\d+\s*조", re.M)


@reader("markdown", (".md", ".markdown"))
def read_markdown(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
    text = _text(source)
    if not text.strip():
        raise InputFormatError("empty file", path=source.name)
    if _LAW_MD_HINT.search(text[:4000]) or re.search(r"^#{1,6}\s*제\s*\d+\s*조", text, re.M):
        yield parse_law_markdown(text, source.name)
    else:
        doc_id = Path(source.name.split("!")[-1]).stem
        yield from text_document_chunks(text, doc_id, markdown=True, opts=_doc_opts(cfg))


@reader("text", (".txt",))
def read_text(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
    text = _text(source)
    if not text.strip():
        raise InputFormatError("empty file", path=source.name)
    doc_id = Path(source.name.split("!")[-1]).stem
    yield from text_document_chunks(text, doc_id, markdown=False, opts=_doc_opts(cfg))


def _document(source: Source, cfg: IngestConfig, summary: IngestSummary, doc: Extracted) -> Iterator[LawDoc | Chunk]:
    """A user's document: statute-like numbering as articles (the statute chunker), else sections."""
    doc_id = Path(source.name.split("!")[-1]).stem
    if doc.pages_without_text:
        summary.needs_ocr[source.name] = doc.pages_without_text
    if not doc.segments:
        scanned = doc.pages and len(doc.pages_without_text) == doc.pages
        raise InputFormatError("no text found" + (" (no page has a text layer: it needs OCR)" if scanned else ""),
                               path=source.name)
    name = doc.name or doc_id
    law = parse_text_law(doc.segments, doc_id, name)
    if law is not None:
        yield law
    else:
        yield from section_chunks(doc.segments, doc_id, name, _doc_opts(cfg))


def _document_reader(name: str, suffixes: tuple[str, ...], magic: tuple[bytes, ...],
                     extractor: Callable[[bytes, str], Extracted]) -> None:
    def read(source: Source, cfg: IngestConfig, summary: IngestSummary) -> Iterator[LawDoc | Chunk]:
        try:
            doc = extractor(source.read_bytes(), source.name)
        except LextuneError:
            raise
        except Exception as exc:  # a damaged file deep inside a parser library: named, the rest goes on
            raise InputFormatError(f"not a readable {name.upper()} file ({type(exc).__name__}: {exc})",
                                   path=source.name) from exc
        yield from _document(source, cfg, summary, doc)

    reader(name, suffixes, magic)(read)


_ZIP, _OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
for _args in (("pdf", (".pdf",), (b"%PDF",), extract.pdf),
              ("docx", (".docx",), (_ZIP,), extract.docx),
              ("hwpx", (".hwpx",), (_ZIP,), extract.hwpx),
              ("hwp", (".hwp",), (_OLE, _ZIP), extract.hwp),  # an HWPX saved as .hwp is read as HWPX
              ("html", (".html", ".htm"), (), extract.html)):
    _document_reader(*_args)


# -- the stage ----------------------------------------------------------------------------------
def ingest_chunks(paths: list[str | Path], cfg: IngestConfig | None = None,
                  progress: Callable[[str], None] | None = None) -> tuple[list[Chunk], IngestSummary]:
    """Read every source into chunks (in memory) and collect the summary; no files written."""
    cfg = cfg or IngestConfig()
    start = time.perf_counter()
    summary = IngestSummary()
    opts = ChunkOptions(unit=cfg.unit, prepend_title=cfg.prepend_title, drop_deleted=cfg.drop_deleted,
                        include_addenda=cfg.include_addenda, include_appendices=cfg.include_appendices)
    stats = ChunkStats()
    chunks: list[Chunk] = []
    seen: set[str] = set()
    docs_seen: set[str] = set()
    for source in iter_sources(paths):
        summary.files += 1
        if progress:
            progress(source.name)
        try:
            produced: list[Chunk] = []
            for item in read_source(source, cfg, summary):
                if isinstance(item, LawDoc):
                    for where, message in item.problems:
                        if cfg.strict:
                            raise InputFormatError(message, path=source.name, field=where)
                        summary.errors.append(IngestError(source.name, where, message))
                    if not item.articles and not item.body:
                        raise StructureError("no articles found")
                    summary.documents[str(item.kind)] += 1
                    produced.extend(law_chunks(item, opts, stats))
                else:
                    if item.doc_id not in docs_seen:
                        docs_seen.add(item.doc_id)
                        summary.documents[str(item.doc_kind)] += 1
                    produced.append(item)
        except (InputFormatError, ValueError) as err:
            located = isinstance(err, InputFormatError) and err.path is not None  # a StructureError names no file
            if cfg.strict:
                if located:
                    raise
                raise InputFormatError(str(err), path=source.name) from err
            msg = str(err)
            position = None
            if located:
                msg = msg.split(": ", 1)[-1]
                position = f"line {err.line}" if err.line else None
            summary.errors.append(IngestError(source.name, position, msg))
            continue
        for c in produced:
            if c.id in seen:
                summary.duplicate_ids += 1
                continue
            seen.add(c.id)
            chunks.append(c)
            summary.chunks[str(c.kind)] += 1
    summary.articles = stats.articles
    summary.deleted_dropped = stats.deleted_dropped
    summary.blocks_skipped = stats.blocks_skipped
    summary.seconds = time.perf_counter() - start
    return chunks, summary


def _inputs_hash(paths: list[str | Path]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        h = hashlib.sha256()
        files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
        out[str(p)] = h.hexdigest()
    return out


class NothingIngestedError(InputFormatError):
    """Every input failed or held no text: no output is written, and the CLI exits non-zero."""

    def __init__(self, message: str, summary: IngestSummary) -> None:
        super().__init__(message)
        self.summary = summary


def ingest(paths: list[str | Path], out_dir: str | Path, cfg: IngestConfig | None = None,
           progress: Callable[[str], None] | None = None) -> IngestSummary:
    """Ingest sources into ``out_dir`` (chunks.jsonl, refs.jsonl, meta.json, config.yaml), atomically."""
    cfg = cfg or IngestConfig()
    start = time.perf_counter()
    chunks, summary = ingest_chunks(paths, cfg, progress)
    if not chunks:
        problems = "; ".join(f"{e.path}{':' + e.position if e.position else ''}: {e.message}"
                             for e in summary.errors[:5])
        raise NothingIngestedError(
            (f"nothing was ingested: all {summary.files} inputs failed ({problems}"
             + (f"; and {len(summary.errors) - 5} more" if len(summary.errors) > 5 else "") + ")")
            if summary.errors else f"nothing was ingested: the {summary.files} inputs hold no text to chunk",
            summary)
    edges = []
    if cfg.resolve_refs:
        edges, stats = resolve_refs(chunks)
        summary.refs = len(edges)
        summary.citations, summary.citations_resolved = stats.citations, stats.resolved
        summary.unresolved = stats.unresolved
    with atomic_dir(out_dir, overwrite=True) as tmp:
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in chunks:
                f.write(c.model_dump_json(exclude_defaults=False))
                f.write("\n")
        with open(tmp / "refs.jsonl", "w", encoding="utf-8") as f:
            for e in edges:
                f.write(e.model_dump_json())
                f.write("\n")
        save_config(cfg, tmp / "config.yaml")
        summary.seconds = time.perf_counter() - start
        meta = make_meta("chunks", config=cfg.model_dump(mode="json"), inputs=_inputs_hash(paths),
                         summary=summary.to_dict())
        write_json_atomic(tmp / "meta.json", meta)
    return summary


def read_chunks(folder: str | Path) -> list[Chunk]:
    """Chunks of an ingest output folder (or a chunks.jsonl path)."""
    p = Path(folder)
    path = p / "chunks.jsonl" if p.is_dir() else p
    if not path.is_file():
        raise InputFormatError("no chunks.jsonl (run `lextune ingest` first)", path=str(path))
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(Chunk.model_validate_json(line))
                except ValueError as exc:
                    raise InputFormatError(f"not a chunk record: {str(exc).splitlines()[0]}", path=str(path),
                                           line=lineno) from exc
    return out


__all__ = ["IngestConfig", "IngestSummary", "ingest", "ingest_chunks", "read_chunks", "READERS", "DocKind"]
