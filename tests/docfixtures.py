"""Documents the reader tests and the reader benchmark make themselves: an HTML page printed to PDF by headless
Chromium, a DOCX written with python-docx, an HWPX zipped from its XML, an HWP 5 file in a compound file
written here (olefile only reads them). No binary fixture is checked in."""

from __future__ import annotations

import re
import struct
import subprocess
import zipfile
import zlib
from html import escape
from pathlib import Path

from liveserver import chromium

# A 약관 in the shape such documents have: a title, a chapter, articles with paragraphs and items.
TERMS = [
    ("heading", "예금거래 기본약관"),
    ("heading", "제1장 총칙"),
    ("text", "제1조(목적) 이 약관은 은행과 거래처 사이의 예금거래에 관한 기본적인 사항을 정함으로써 거래를 원활하게 하기 위한 것이다."),
    ("text", "제2조(실명거래) ① 거래처는 실명으로 거래하여야 한다."),
    ("text", "② 은행은 거래처의 실명을 확인하기 위하여 주민등록증 등 실명확인증표를 요구할 수 있다."),
    ("text", "제3조(거래장소) 거래처는 예금계좌를 개설한 영업점에서 모든 예금거래를 한다. 다만, 은행이 정하는 바에 따라 다른 영업점에서도 거래할 수 있다."),
    ("page", ""),
    ("heading", "제2장 입금과 지급"),
    ("text", "제4조(입금) ① 거래처는 현금이나 즉시 추심할 수 있는 수표 등으로 입금할 수 있다."),
    ("text", "② 다음 각 호의 증권은 입금할 수 없다."),
    ("text", "1. 발행일이 지난 수표"),
    ("text", "2. 지급장소가 다른 어음"),
    ("text", "제5조(지급시기) 은행은 거래처가 청구한 때에 예금을 지급한다."),
]
TABLE = [("구분", "이율"), ("보통예금", "연 0.1%"), ("정기예금", "연 3.5%")]


def terms(repeat: int = 1) -> list[tuple[str, str]]:
    """TERMS ``repeat`` times, articles and chapters numbered on (제6조… in the second copy): a longer document."""
    out = []
    for r in range(repeat):
        for kind, text in TERMS:
            if r and kind == "heading" and text.endswith("약관"):
                continue
            text = re.sub(r"^제(\d+)조", lambda m, r=r: f"제{int(m.group(1)) + 5 * r}조", text)
            out.append((kind, re.sub(r"^제(\d+)장", lambda m, r=r: f"제{int(m.group(1)) + 2 * r}장", text)))
        if r < repeat - 1:
            out.append(("page", ""))
    return out


def terms_html(blank_page: bool = False, repeat: int = 1, chrome: bool = True) -> str:
    """The terms as a page: headings as h1/h2, a page break where TERMS says, the rate table, and (for the
    PDF) an optional blank page: a page without a text layer. ``chrome``: a site's navigation, footer and
    script around the main text (what the HTML reader drops; a printer prints the first two)."""
    body = []
    for kind, text in terms(repeat):
        if kind == "page":
            body.append('<div style="page-break-after: always"></div>')
        elif kind == "heading":
            level = 1 if text.endswith("약관") else 2
            body.append(f"<h{level}>{escape(text)}</h{level}>")
        else:
            body.append(f"<p>{escape(text)}</p>")
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in TABLE)
    body.append(f"<table>{rows}</table>")
    if blank_page:
        body.append('<div style="page-break-before: always"></div><div style="height: 10px"></div>')
    return ("<!doctype html><html><head><meta charset='utf-8'><title>예금거래 기본약관</title>"
            "<style>body { font-family: 'NanumGothic', sans-serif; }</style></head><body>"
            + ("<nav>홈 | 상품 | 고객센터</nav>" if chrome else "") + f"<main>{''.join(body)}</main>"
            + ("<footer>Copyright 은행</footer><script>var x = '제9조(없음) 스크립트';</script>" if chrome else "")
            + "</body></html>")


def print_pdf(html: str, out: Path) -> Path:
    """``html`` printed to ``out`` by headless Chromium (Korean text in the Nanum fonts)."""
    page = out.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
             f"--user-data-dir={out.parent / '.chromium-profile'}", f"--print-to-pdf={out}"]
    proc = subprocess.run([chromium(), *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    if not out.is_file():
        raise RuntimeError(f"chromium printed no PDF: {proc.stderr[-2000:]}")
    return out


def write_docx(out: Path, repeat: int = 1) -> Path:
    import docx

    doc = docx.Document()
    doc.core_properties.title = "예금거래 기본약관"
    for kind, text in terms(repeat):
        if kind == "heading":
            doc.add_heading(text, level=1 if text.endswith("약관") else 2)
        elif kind == "text":
            doc.add_paragraph(text)
    table = doc.add_table(rows=len(TABLE), cols=2)
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.save(out)
    return out


_HP = "http://www.hancom.co.kr/hwpml/2011/paragraph"
_HS = "http://www.hancom.co.kr/hwpml/2011/section"


def _hp(text: str) -> str:
    return f'<hp:p><hp:run><hp:t>{escape(text)}</hp:t></hp:run></hp:p>'


def write_hwpx(out: Path, repeat: int = 1) -> Path:
    """A minimal HWPX package: mimetype, manifest, content.hpf and one section with paragraphs and a table
    (inside a paragraph's run, as Hancom writes it)."""
    paras = "".join(_hp(text) for kind, text in terms(repeat) if kind != "page")
    rows = "".join("<hp:tr>" + "".join(f"<hp:tc><hp:subList>{_hp(c)}</hp:subList></hp:tc>" for c in row) + "</hp:tr>"
                   for row in TABLE)
    table = f"<hp:p><hp:run><hp:tbl>{rows}</hp:tbl></hp:run></hp:p>"
    section = (f'<?xml version="1.0" encoding="UTF-8"?><hs:sec xmlns:hs="{_HS}" xmlns:hp="{_HP}">'
               f"{paras}{table}</hs:sec>")
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mimetype", "application/hwp+zip")
        zf.writestr("META-INF/manifest.xml", '<?xml version="1.0"?><odf:manifest xmlns:odf="urn:oasis:names:tc:'
                    'opendocument:xmlns:manifest:1.0"/>')
        zf.writestr("Contents/content.hpf", '<?xml version="1.0"?><opf:package xmlns:opf="http://www.idpf.org/'
                    '2007/opf/"><opf:spine><opf:itemref idref="section0"/></opf:spine></opf:package>')
        zf.writestr("Contents/section0.xml", section)
    return out


# -- HWP 5: a compound file (CFB v3, 512-byte sectors) with FileHeader and BodyText/Section0 -------------------
_END, _FREE, _FATSECT, _NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def _dir_entry(name: str, kind: int, left=_NOSTREAM, right=_NOSTREAM, child=_NOSTREAM, start=_END, size=0) -> bytes:
    raw = name.encode("utf-16-le") + b"\0\0"
    return (raw.ljust(64, b"\0") + struct.pack("<HBB3I", len(raw), kind, 1, left, right, child) + b"\0" * 36
            + struct.pack("<IQ", start, size))


def _cfb(streams: list[tuple[str, bytes]]) -> bytes:
    """A compound file holding ``FileHeader`` and ``BodyText/Section0`` (each at least 4096 bytes, so both live
    in regular sectors and no mini stream is needed)."""
    (h_name, header), (s_name, section) = streams
    blobs = [header.ljust(max(4096, len(header)), b"\0"), section.ljust(max(4096, len(section)), b"\0")]
    blobs = [b.ljust(-(-len(b) // 512) * 512, b"\0") for b in blobs]
    fat = [_FATSECT, _END]  # sector 0: the FAT, sector 1: the directory
    starts = []
    for b in blobs:
        n = len(b) // 512
        starts.append(len(fat))
        fat += [len(fat) + i + 1 for i in range(n - 1)] + [_END]
    if len(fat) > 128:
        raise ValueError("fixture too large for one FAT sector")
    fat += [_FREE] * (128 - len(fat))
    # root -> FileHeader (left: BodyText -> Section0)
    directory = (_dir_entry("Root Entry", 5, child=1)
                 + _dir_entry(h_name, 2, left=2, start=starts[0], size=len(header.ljust(4096, b"\0")))
                 + _dir_entry("BodyText", 1, child=3)
                 + _dir_entry(s_name, 2, start=starts[1], size=len(section.ljust(4096, b"\0"))))
    hdr = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 16 + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
           + b"\0" * 6 + struct.pack("<IIIIIIIII", 0, 1, 1, 0, 4096, _END, 0, _END, 0)
           + struct.pack("<I", 0) + struct.pack("<I", _FREE) * 108)
    return hdr + struct.pack("<128I", *fat) + directory + b"".join(blobs)


def hwp_para_text(text: str, with_controls: bool = True) -> bytes:
    """A PARA_TEXT record payload: ``text`` in UTF-16, with an extended control (a section definition, 8 units)
    before it and the paragraph end (13) after, as Hancom writes them."""
    ctrl = struct.pack("<8H", 2, 0x6365, 0x6473, 0, 0, 0, 0, 2) if with_controls else b""
    return ctrl + text.encode("utf-16-le") + struct.pack("<H", 13)


def _record(tag: int, payload: bytes, level: int = 0) -> bytes:
    if len(payload) < 0xFFF:
        return struct.pack("<I", tag | level << 10 | len(payload) << 20) + payload
    return struct.pack("<II", tag | level << 10 | 0xFFF << 20, len(payload)) + payload


def write_hwp(out: Path, repeat: int = 1, *, compressed: bool = True, encrypted: bool = False) -> Path:
    """An HWP 5 document: a PARA_HEADER and PARA_TEXT record per paragraph, table cells as paragraphs."""
    texts = [text for kind, text in terms(repeat) if kind != "page"] + [c for row in TABLE for c in row]
    body = b"".join(_record(66, b"\0" * 22) + _record(67, hwp_para_text(t, i == 0), level=1)
                    for i, t in enumerate(texts))
    flags = (1 if compressed else 0) | (2 if encrypted else 0)
    header = b"HWP Document File".ljust(32, b"\0") + struct.pack("<II", 0x05000300, flags)
    if compressed:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = comp.compress(body) + comp.flush()
    out.write_bytes(_cfb([("FileHeader", header), ("Section0", body)]))
    return out


def terms_text(repeat: int = 1) -> str:
    """Every character the documents carry (terms and table), for the recovery share."""
    return "".join(text for kind, text in terms(repeat) if kind != "page") + "".join(c for row in TABLE for c in row)
