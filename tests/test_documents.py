"""The user's own documents: PDF, DOCX, HWPX, HWP 5 and HTML through the one reader registry, round-tripped
from files the tests make themselves (tests/docfixtures.py): characters recovered, pages, 제N조 structure,
and every unreadable file named with its reason while the rest is ingested."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

import docfixtures as fx
from lextune.cli.main import app
from lextune.errors import InputFormatError
from lextune.ingest import extract, ingest, ingest_chunks
from lextune.ingest.pipeline import READERS, SUFFIX_READER

needs_chromium = pytest.mark.skipif(fx.chromium() is None, reason="needs Debian's chromium and fonts-nanum "
                                    "(apt-get install chromium fonts-nanum; .ci/run installs them)")


def recovered(expected: str, segments: list[extract.Segment]) -> float:
    """Share of the expected characters (white space aside) found in what was read, as a multiset."""
    want = Counter(c for c in expected if not c.isspace())
    got = Counter(c for s in segments for c in s.text if not c.isspace() and c != "|")
    return sum((want & got).values()) / sum(want.values())


def _structure_holds(chunks, doc_id: str) -> None:
    """The terms became articles and paragraphs under their chapters, like a statute."""
    by_id = {c.id: c for c in chunks}
    assert {f"{doc_id}:a1", f"{doc_id}:a2:p1", f"{doc_id}:a2:p2", f"{doc_id}:a3", f"{doc_id}:a4:p2"} <= set(by_id)
    assert by_id[f"{doc_id}:a2:p2"].title.endswith("제1장 총칙 > 제2조(실명거래) ②")
    assert by_id[f"{doc_id}:a4:p2"].path == ["제2장 입금과 지급"]
    assert "1. 발행일이 지난 수표" in by_id[f"{doc_id}:a4:p2"].text


def test_every_format_is_one_registry_entry():
    assert {"pdf", "docx", "hwpx", "hwp", "html"} <= set(READERS)
    assert SUFFIX_READER[".htm"] == SUFFIX_READER[".html"] == "html" and READERS["pdf"].magic == (b"%PDF",)


@needs_chromium
def test_pdf_printed_by_chromium_round_trips_with_pages_and_articles(tmp_path):
    pdf = fx.print_pdf(fx.terms_html(blank_page=True, chrome=False), tmp_path / "terms.pdf")
    got = extract.pdf(pdf.read_bytes(), str(pdf))
    assert recovered(fx.terms_text(), got.segments) >= 0.99
    assert got.pages == 3 and got.pages_without_text == [3]  # the blank page has no text layer
    assert {s.page for s in got.segments if s.text.startswith("제4조")} == {2}
    chunks, summary = ingest_chunks([pdf])
    _structure_holds(chunks, "terms")
    pages = {c.article: c.metadata.get("page") for c in chunks}
    assert pages["1"] == 1 and pages["4"] == 2 and pages["5"] == 2
    assert summary.needs_ocr == {str(pdf): [3]} and summary.documents["document"] == 1


def test_docx_written_with_python_docx_round_trips_with_headings_and_table(tmp_path):
    path = fx.write_docx(tmp_path / "terms.docx")
    got = extract.docx(path.read_bytes(), str(path))
    assert recovered(fx.terms_text(), got.segments) >= 0.99
    assert [s.text for s in got.segments if s.heading] == ["예금거래 기본약관", "제1장 총칙", "제2장 입금과 지급"]
    assert [s.text for s in got.segments if s.kind == "row"] == ["구분 | 이율", "보통예금 | 연 0.1%", "정기예금 | 연 3.5%"]
    chunks, _ = ingest_chunks([path])
    _structure_holds(chunks, "terms")
    assert chunks[0].law_name == "예금거래 기본약관"  # the document's own title


def test_hwpx_zipped_from_xml_round_trips_with_its_table(tmp_path):
    path = fx.write_hwpx(tmp_path / "terms.hwpx")
    got = extract.hwpx(path.read_bytes(), str(path))
    assert recovered(fx.terms_text(), got.segments) >= 0.99
    assert [s.text for s in got.segments if s.kind == "row"][-1] == "정기예금 | 연 3.5%"
    assert sum(s.text == "보통예금 | 연 0.1%" for s in got.segments) == 1  # a table cell is read once
    chunks, _ = ingest_chunks([path])
    _structure_holds(chunks, "terms")


@pytest.mark.parametrize("compressed", [True, False], ids=["compressed", "stored"])
def test_hwp5_compound_file_round_trips(tmp_path, compressed):
    path = fx.write_hwp(tmp_path / "terms.hwp", compressed=compressed)
    got = extract.hwp(path.read_bytes(), str(path))
    assert recovered(fx.terms_text(), got.segments) >= 0.99
    assert got.segments[2].text.startswith("제1조(목적) 이 약관은")  # the control before it is not text
    chunks, _ = ingest_chunks([path])
    _structure_holds(chunks, "terms")


def test_hwp_paragraph_text_drops_controls_and_keeps_tabs_and_breaks():
    import struct

    def units(*codes: int) -> bytes:
        return struct.pack(f"<{len(codes)}H", *codes)

    assert extract.hwp_paragraph_text(fx.hwp_para_text("가나")) == "가나"  # a section control before, the end after
    # a tab and a field end are inline controls of 8 units; a line break, a hyphen and a fixed space one each
    raw = ("앞".encode("utf-16-le") + units(9, 0, 0, 0, 0, 0, 0, 9) + units(4, 0, 0, 0, 0, 0, 0, 4) + units(10)
           + "뒤".encode("utf-16-le") + units(24, 31) + "끝".encode("utf-16-le"))
    assert extract.hwp_paragraph_text(raw) == "앞\t\n뒤- 끝"


def test_html_keeps_main_text_and_headings_and_drops_navigation_and_scripts(tmp_path):
    page = tmp_path / "terms.html"
    page.write_text(fx.terms_html(), encoding="utf-8")
    got = extract.html(page.read_bytes(), str(page))
    assert recovered(fx.terms_text(), got.segments) >= 0.99
    text = " ".join(s.text for s in got.segments)
    assert "고객센터" not in text and "Copyright" not in text and "스크립트" not in text
    assert got.name == "예금거래 기본약관"
    chunks, _ = ingest_chunks([page])
    _structure_holds(chunks, "terms")
    # a page without statute numbering: sections under its headings
    plain = tmp_path / "guide.html"
    plain.write_text("<html><body><h1>안내</h1><h2>가입</h2><p>영업점에서 가입한다.</p><h2>해지</h2>"
                     "<p>언제든지 해지할 수 있다.</p></body></html>", encoding="utf-8")
    chunks, _ = ingest_chunks([plain])
    assert [(c.title, c.text) for c in chunks] == [("안내 > 안내 > 가입", "영업점에서 가입한다."),
                                                  ("안내 > 안내 > 해지", "언제든지 해지할 수 있다.")]


def test_unreadable_files_are_named_with_their_reason_and_the_rest_ingested(tmp_path):
    good = fx.write_docx(tmp_path / "terms.docx")
    bad = {
        "corrupt.pdf": (b"%PDF-1.7\nnot really a pdf", "not a readable PDF"),
        "text.pdf": (b"hello", "not a PDF file"),
        "empty.docx": (b"", "empty file"),
        "broken.hwpx": (b"PK\x03\x04broken", "not a readable HWPX"),
        "locked.hwp": (fx.write_hwp(tmp_path / "x.hwp", encrypted=True).read_bytes(), "encrypted HWP"),
        "old.hwp": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "not a readable HWP 5 file"),
    }
    (tmp_path / "x.hwp").unlink()
    for name, (data, _) in bad.items():
        (tmp_path / name).write_bytes(data)
    locked = tmp_path / "locked.hwpx"
    with zipfile.ZipFile(locked, "w") as zf:
        zf.writestr("META-INF/manifest.xml", "<manifest><file-entry><encryption-data/></file-entry></manifest>")
        zf.writestr("Contents/section0.xml", "<sec/>")
    summary = ingest([tmp_path], tmp_path / "out")
    errors = {Path(e.path).name: e.message for e in summary.errors}
    for name, (_, reason) in bad.items():
        assert reason in errors[name], (name, errors.get(name))
    assert "encrypted HWPX" in errors["locked.hwpx"]
    assert summary.documents["document"] == 1 and summary.total_chunks > 5
    chunks = [json.loads(line) for line in (tmp_path / "out" / "chunks.jsonl").read_text().splitlines()]
    assert {c["doc_id"] for c in chunks} == {"terms"}
    with pytest.raises(InputFormatError, match="corrupt.pdf: not a readable PDF"):  # the reader names the file
        extract.pdf((tmp_path / "corrupt.pdf").read_bytes(), "corrupt.pdf")
    assert good.is_file()


def test_only_unreadable_files_exit_non_zero_and_write_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.pdf").write_bytes(b"%PDF-1.4 broken")
    (tmp_path / "in" / "b.hwpx").write_bytes(b"not a zip")
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    assert res.exit_code != 0 and not (tmp_path / "out").exists()
    flat = "".join(res.output.split())
    assert "a.pdf" in flat and "b.hwpx" in flat


@needs_chromium
def test_ingest_cli_reports_pages_that_need_ocr(tmp_path):
    pdf = fx.print_pdf(fx.terms_html(blank_page=True, chrome=False), tmp_path / "terms.pdf")
    res = CliRunner().invoke(app, ["ingest", str(pdf), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    flat = "".join(res.output.split())
    assert "needOCR" in flat and "terms.pdf" in flat


@pytest.mark.skipif(shutil.which("qpdf") is None, reason="needs Debian's qpdf to encrypt a PDF (.ci/run installs it)")
def test_an_encrypted_pdf_is_named_as_encrypted(tmp_path):
    import subprocess

    import pypdfium2 as pdfium

    plain = tmp_path / "plain.pdf"
    doc = pdfium.PdfDocument.new()
    doc.new_page(200, 200)
    doc.save(plain)
    locked = tmp_path / "locked.pdf"
    subprocess.run(["qpdf", "--encrypt", "user-secret", "owner-secret", "256", "--", str(plain), str(locked)],
                   check=True, capture_output=True)
    summary = ingest([locked, fx.write_docx(tmp_path / "terms.docx")], tmp_path / "out")
    assert [(Path(e.path).name, e.message) for e in summary.errors] == [
        ("locked.pdf", "encrypted PDF (password-protected): decrypt it first")]
