"""Text out of the user's own documents: PDF, DOCX, HWPX, HWP 5 and HTML, as ordered segments.

A :class:`Segment` is a line of running text, a heading (with its level) or a table row (cells joined by
`` | ``), with the page it is on where the format has pages (PDF). What the segments say is turned into
chunks by :mod:`lextune.ingest.text_law`: statute-like numbering (제1조(목적) …) becomes articles and
paragraphs, anything else sections under its headings. Each extractor raises
:class:`~lextune.errors.InputFormatError` naming why a file cannot be read (encrypted, corrupt, empty).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from xml.etree import ElementTree

from lextune.errors import InputFormatError
from lextune.extras import optional_import


@dataclass
class Segment:
    text: str
    page: int | None = None
    heading: int = 0  # 1-6 for a heading, 0 for body text
    kind: str = "text"  # text | heading | row


@dataclass
class Extracted:
    """A document's segments, its title if the file names one, and the pages that held no text (need OCR)."""

    segments: list[Segment] = field(default_factory=list)
    title: str | None = None
    pages: int = 0
    pages_without_text: list[int] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        """What the document calls itself: its title (unless that is a file name, as printers set it), else
        its first heading."""
        if self.title and not re.search(r"\.(?:html?|pdf|docx?|hwpx?|txt)$", self.title, re.I):
            return self.title
        return next((s.text for s in self.segments if s.heading), None)


def _lines(text: str, page: int | None = None) -> list[Segment]:
    return [Segment(line.strip(), page) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
            if line.strip()]


# -- PDF (pypdfium2) ---------------------------------------------------------------------------------------
def pdf(data: bytes, name: str) -> Extracted:
    """Text per page in reading order (PDFium's text layer); a page with no text is listed, not skipped."""
    pdfium = optional_import("pypdfium2", "documents", "reading PDF")
    if not data.startswith(b"%PDF"):
        raise InputFormatError(f"not a PDF (starts with {data[:8]!r})", path=name)
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        why = str(exc)
        if "password" in why.lower():
            raise InputFormatError("encrypted PDF (password-protected): decrypt it first", path=name) from exc
        raise InputFormatError(f"not a readable PDF ({why})", path=name) from exc
    out = Extracted(pages=len(doc))
    try:
        title = (doc.get_metadata_dict().get("Title") or "").strip()
        out.title = title or None
        for i in range(len(doc)):
            page = doc[i]
            text = page.get_textpage().get_text_range()
            segs = _lines(text, i + 1)
            if not segs:
                out.pages_without_text.append(i + 1)
            out.segments.extend(segs)
    finally:
        doc.close()
    return out


# -- DOCX (python-docx) ------------------------------------------------------------------------------------
_HEADING_STYLE = re.compile(r"^(?:heading|제목)\s*(\d)", re.I)


def docx(data: bytes, name: str) -> Extracted:
    """Paragraphs and tables in body order; Heading N (제목 N) styles and the Title style as headings."""
    docx_mod = optional_import("docx", "documents", "reading DOCX")
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        doc = docx_mod.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InputFormatError(f"not a readable DOCX ({exc})", path=name) from exc
    out = Extracted(title=(doc.core_properties.title or "").strip() or None)
    style_names = {s.style_id: s.name or "" for s in doc.styles}  # once: python-docx resolves each lookup anew
    for el in doc.element.body.iterchildren():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(el, doc)
            style = style_names.get(el.style or "", "")
            m = _HEADING_STYLE.match(style)
            level = int(m.group(1)) if m else (1 if style == "Title" else 0)
            for seg in _lines(para.text):
                out.segments.append(Segment(seg.text, heading=level, kind="heading" if level else "text"))
        elif tag == "tbl":
            for row in Table(el, doc).rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    out.segments.append(Segment(" | ".join(cells), kind="row"))
    return out


# -- HWPX (zipped XML, standard library) -------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _hwpx_text(el) -> str:
    """The text of a paragraph, leaving out what tables nested in it hold."""
    parts: list[str] = []

    def walk(node) -> None:
        for child in node:
            name = _local(child.tag)
            if name == "tbl":
                continue
            if name == "t":
                parts.append(child.text or "")
                for sub in child:  # tabs and line breaks inside a run of text
                    if _local(sub.tag) in ("tab", "lineBreak"):
                        parts.append("\t" if _local(sub.tag) == "tab" else "\n")
                    parts.append(sub.tail or "")
            else:
                walk(child)

    walk(el)
    return "".join(parts)


def _tables_in(node):
    """The tables inside ``node``, outermost only (a table in a table is read with its cell)."""
    for child in node:
        if _local(child.tag) == "tbl":
            yield child
        else:
            yield from _tables_in(child)


def _hwpx_blocks(node, out: list[Segment]) -> None:
    for child in node:
        name = _local(child.tag)
        if name == "p":
            out.extend(_lines(_hwpx_text(child)))
            for tbl in _tables_in(child):
                _hwpx_table(tbl, out)
        elif name == "tbl":
            _hwpx_table(child, out)
        else:
            _hwpx_blocks(child, out)


def _hwpx_table(tbl, out: list[Segment]) -> None:
    for tr in (x for x in tbl if _local(x.tag) == "tr"):
        cells = [" ".join(t for p in tc.iter() if _local(p.tag) == "p" and (t := _hwpx_text(p).strip()))
                 for tc in tr if _local(tc.tag) == "tc"]
        if any(cells):
            out.append(Segment(" | ".join(cells), kind="row"))


def hwpx(data: bytes, name: str) -> Extracted:
    """Sections (``Contents/section0.xml``, …) in order: paragraphs, and tables as rows."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InputFormatError(f"not a readable HWPX (not a zip archive: {exc})", path=name) from exc
    names = zf.namelist()
    if "META-INF/manifest.xml" in names and b"encryption-data" in zf.read("META-INF/manifest.xml"):
        raise InputFormatError("encrypted HWPX (password-protected): save it without a password", path=name)
    sections = sorted((n for n in names if re.fullmatch(r"Contents/section\d+\.xml", n)),
                      key=lambda n: int(re.search(r"\d+", n.rsplit("/", 1)[-1]).group()))
    if not sections:
        raise InputFormatError("not a readable HWPX (no Contents/section*.xml)", path=name)
    out = Extracted()
    for sec in sections:
        try:
            root = ElementTree.fromstring(zf.read(sec))
        except ElementTree.ParseError as exc:
            raise InputFormatError(f"not a readable HWPX ({sec}: {exc})", path=name) from exc
        _hwpx_blocks(root, out.segments)
    return out


# -- HWP 5 (OLE compound file, olefile + zlib) -------------------------------------------------------------
HWP_SIGNATURE = b"HWP Document File"
_PARA_TEXT = 67  # HWPTAG_BEGIN (16) + 51
# Control characters in PARA_TEXT: these take 8 UTF-16 units (the code, 6 of parameters, the code again: a
# tab (9), fields, tables, footnotes, ...); the others (0, 10, 13, 24-31) one: 10 a line break, 13 the
# paragraph end, 24 a hyphen, 30 and 31 non-breaking and fixed-width spaces.
_WIDE_CONTROLS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}
_CONTROL_TEXT = {9: "\t", 10: "\n", 24: "-", 30: " ", 31: " "}


def _hwp_records(data: bytes):
    """(tag id, payload) of each record of a section stream."""
    pos = 0
    while pos + 4 <= len(data):
        (header,) = struct.unpack_from("<I", data, pos)
        pos += 4
        tag, size = header & 0x3FF, (header >> 20) & 0xFFF
        if size == 0xFFF:
            if pos + 4 > len(data):
                break
            (size,) = struct.unpack_from("<I", data, pos)
            pos += 4
        yield tag, data[pos : pos + size]
        pos += size


def hwp_paragraph_text(payload: bytes) -> str:
    """A PARA_TEXT record as text: inline and extended controls dropped, tabs and line breaks kept."""
    units = struct.unpack(f"<{len(payload) // 2}H", payload[: len(payload) // 2 * 2])
    out: list[str] = []
    i = 0
    while i < len(units):
        u = units[i]
        if u < 32:
            out.append(_CONTROL_TEXT.get(u, ""))
            i += 8 if u in _WIDE_CONTROLS else 1
            continue
        out.append(chr(u))
        i += 1
    return "".join(out)


def hwp(data: bytes, name: str) -> Extracted:
    """The paragraphs of every BodyText section (table cells as their own paragraphs); compressed or not."""
    if data.startswith(b"PK\x03\x04"):  # an HWPX document saved under .hwp
        return hwpx(data, name)
    olefile = optional_import("olefile", "documents", "reading HWP")
    if not olefile.isOleFile(io.BytesIO(data)):
        raise InputFormatError("not a readable HWP 5 file (not an OLE compound file): save it as HWPX", path=name)
    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        header = ole.openstream("FileHeader").read()
    except OSError as exc:
        raise InputFormatError(f"not a readable HWP 5 file ({exc}): save it as HWPX", path=name) from exc
    if not header.startswith(HWP_SIGNATURE):
        raise InputFormatError("not a readable HWP 5 file (no HWP signature): save it as HWPX", path=name)
    (flags,) = struct.unpack_from("<I", header, 36)
    if flags & 0x2:
        raise InputFormatError("encrypted HWP (password-protected): save it without a password", path=name)
    if flags & 0x4:
        raise InputFormatError("HWP distribution document (배포용 문서) cannot be read: save it as HWPX", path=name)
    sections = sorted((e for e in ole.listdir() if len(e) == 2 and e[0] == "BodyText" and e[1].startswith("Section")),
                      key=lambda e: int(e[1][7:] or 0))
    if not sections:
        raise InputFormatError("not a readable HWP 5 file (no BodyText sections): save it as HWPX", path=name)
    out = Extracted()
    for entry in sections:
        raw = ole.openstream(entry).read()
        try:
            body = zlib.decompressobj(-15).decompress(raw) if flags & 0x1 else raw
        except zlib.error as exc:
            raise InputFormatError(f"not a readable HWP 5 file ({'/'.join(entry)}: {exc})", path=name) from exc
        for tag, payload in _hwp_records(body):
            if tag == _PARA_TEXT:
                out.segments.extend(_lines(hwp_paragraph_text(payload)))
    ole.close()
    return out


# -- HTML (standard library) -------------------------------------------------------------------------------
_DROP = {"script", "style", "nav", "noscript", "template", "header", "footer", "aside", "form", "button", "svg"}
_BLOCK = {"p", "div", "li", "section", "article", "main", "br", "dd", "dt", "blockquote", "pre", "table",
          "caption", "figcaption", "ul", "ol", "dl", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "title"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "track", "wbr"}


class _HtmlText(HTMLParser):
    """Blocks of an HTML page in order; each remembers whether it lies inside <main> or <article>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[Segment, bool]] = []
        self.buf: list[str] = []
        self.drop = 0
        self.main = 0
        self.heading = 0
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.title: str | None = None
        self.in_title = False

    def flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.buf)).strip()
        self.buf = []
        if text:
            kind = "heading" if self.heading else "text"
            self.blocks.append((Segment(text, heading=self.heading, kind=kind), self.main > 0))

    def handle_starttag(self, tag, attrs):
        if tag in _DROP and tag not in _VOID:
            self.drop += 1
        if self.drop:
            return
        if tag == "title":
            self.in_title = True
        if tag in ("main", "article"):
            self.main += 1
        if tag == "tr":
            self.flush()
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag in _BLOCK:
            self.flush()
            if re.fullmatch(r"h[1-6]", tag):
                self.heading = int(tag[1])

    def handle_endtag(self, tag):
        if tag in _DROP and tag not in _VOID:
            self.drop = max(0, self.drop - 1)
            return
        if self.drop:
            return
        if tag == "title":
            self.in_title = False
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(re.sub(r"\s+", " ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if any(self.row):
                self.blocks.append((Segment(" | ".join(self.row), kind="row"), self.main > 0))
            self.row = None
        elif tag in _BLOCK:
            self.flush()
            if re.fullmatch(r"h[1-6]", tag):
                self.heading = 0
        if tag in ("main", "article"):
            self.main = max(0, self.main - 1)

    def handle_data(self, data):
        if self.drop:
            return
        if self.in_title:
            self.title = ((self.title or "") + data).strip()
            return
        (self.cell if self.cell is not None else self.buf).append(data)


def html(data: bytes, name: str) -> Extracted:
    """The page's main text (inside <main>/<article> when it has them), headings as structure; scripts,
    styles, navigation, headers and footers dropped; table rows as rows."""
    m = re.search(rb"<meta[^>]+charset=[\"']?([\w-]+)", data[:2048], re.I)
    encoding = m.group(1).decode("ascii") if m else "utf-8"
    try:
        text = data.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"cannot decode the page as {encoding} ({exc})", path=name) from exc
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    parser.flush()
    main = [s for s, inside in parser.blocks if inside]
    return Extracted(segments=main or [s for s, _ in parser.blocks], title=parser.title)
