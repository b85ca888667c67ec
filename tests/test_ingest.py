"""Ingest: golden chunks on hand-checked provisions, JSON/Markdown agreement, references, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.errors import InputFormatError
from lextune.ingest import IngestConfig, ingest, ingest_chunks, read_chunks
from lextune.ingest.refs import resolve_refs

FIX = Path(__file__).parent / "fixtures" / "ingest"
LAW_JSON = FIX / "law_900001.json"
LAW_MD = FIX / "테스트금융법.md"

# Hand-checked: 조의N, 삭제 (article, item, 목), 호/목 nesting, 단서, amendment tags, articles without 항.
GOLDEN = [
    ("900001:a1", "테스트금융법 > 제1장 총칙 > 제1조(목적)", "이 법은 금융거래의 안전을 도모함을 목적으로 한다."),
    ("900001:a2", "테스트금융법 > 제1장 총칙 > 제2조(정의)",
     '이 법에서 사용하는 용어의 뜻은 다음과 같다.\n1. "금융회사"란 다음 각 목의 어느 하나에 해당하는 자를 말한다.\n'
     '가. 「은행법」에 따른 은행\n다. 그 밖에 대통령령으로 정하는 자\n2의2. "이용자"란 금융회사와 거래하는 자를 말한다.'),
    ("900001:a2-2:p1", "테스트금융법 > 제1장 총칙 > 제2조의2(이용자 보호) ①",
     "금융회사는 이용자를 보호하여야 한다. 다만, 이용자에게 고의가 있는 경우에는 그러하지 아니하다."),
    ("900001:a2-2:p2", "테스트금융법 > 제1장 총칙 > 제2조의2(이용자 보호) ②", "제1항에 따른 보호의 방법은 대통령령으로 정한다."),
    ("900001:a4:p1", "테스트금융법 > 제2장 보칙 > 제4조(손해배상) ①",
     "금융회사가 제2조의2제1항을 위반한 경우에는 「민법」 제750조에 따라 손해를 배상한다."),
    ("900001:a4:p2", "테스트금융법 > 제2장 보칙 > 제4조(손해배상) ②", "전항의 배상액은 같은 조 제3항 및 제2조제1호에 따른다."),
    ("900001:a4:p3", "테스트금융법 > 제2장 보칙 > 제4조(손해배상) ③", "제1조부터 제2조까지의 규정은 이 조에 준용한다."),
]


@pytest.mark.parametrize("source", [LAW_JSON, LAW_MD], ids=["law.go.kr-json", "legalize-kr-markdown"])
def test_golden_paragraph_units(source):
    chunks, summary = ingest_chunks([source])
    assert [(c.id, c.title, c.text) for c in chunks] == GOLDEN
    assert summary.deleted_dropped == 1  # 제3조 삭제
    assert summary.blocks_skipped == 1  # 부칙 kept apart
    c = {c.id: c for c in chunks}
    assert c["900001:a2-2:p1"].parent_id == "900001:a2-2" and c["900001:a1"].parent_id is None
    assert c["900001:a1"].contents == f"{GOLDEN[0][1]}\n{GOLDEN[0][2]}"  # breadcrumb prepended by default
    assert c["900001:a1"].metadata["tags"] == ["<개정 2020.1.7>"]  # amendment tags leave the text
    assert "[본조신설 2018.9.18]" in c["900001:a2-2:p2"].metadata["tags"]
    assert c["900001:a2-2:p1"].article == "2의2" and c["900001:a2-2:p1"].paragraph == 1
    assert c["900001:a1"].law_name == "테스트금융법" and c["900001:a1"].doc_kind == "법률"
    assert c["900001:a1"].effective_date == "20250101" and c["900001:a1"].ministry == "금융위원회"
    assert c["900001:a4:p1"].path == ["제1장 총칙", "제2장 보칙"][1:]


def test_units_article_and_item_and_options():
    art, _ = ingest_chunks([LAW_JSON], IngestConfig(unit="article"))
    assert [c.id for c in art] == ["900001:a1", "900001:a2", "900001:a2-2", "900001:a4"]
    assert art[2].text.startswith("① 금융회사는") and "\n② 제1항에 따른" in art[2].text
    items, _ = ingest_chunks([LAW_JSON], IngestConfig(unit="item"))
    ids = [c.id for c in items]
    assert "900001:a2:i1" in ids and "900001:a2:i2-2" in ids and "900001:a2:i2" not in ids  # 삭제 dropped
    item1 = next(c for c in items if c.id == "900001:a2:i1")
    assert item1.text.endswith("가. 「은행법」에 따른 은행\n다. 그 밖에 대통령령으로 정하는 자")  # 목 stay with their 호
    assert item1.title.endswith("제2조(정의) 제1호") and item1.parent_id == "900001:a2"
    kept, s = ingest_chunks([LAW_JSON], IngestConfig(drop_deleted=False, include_addenda=True, prepend_title=False))
    ids = {c.id: c for c in kept}
    assert ids["900001:a3"].text == "삭제" and s.deleted_dropped == 0
    assert ids["900001:add1"].flags == ["addendum"] and ids["900001:add1"].kind == "addendum"
    assert ids["900001:a1"].contents == ids["900001:a1"].text


def test_admin_rule_inline_structure_and_appendix():
    chunks, _ = ingest_chunks([FIX / "admrule_777.json"], IngestConfig(include_appendices=True))
    c = {c.id: c for c in chunks}
    assert c["adm777:a2:p1"].text == "감독원장은 금융회사를 검사한다."
    assert c["adm777:a2:p2"].text == "검사의 종류는 다음 각호와 같다.\n1. 종합검사\n2. 부문검사\n가. 현장검사\n나. 서면검사"
    assert "adm777:a3" not in c  # 삭 제
    assert c["adm777:t1"].flags == ["appendix"] and c["adm777:t1"].title.endswith("별표 1 제재양정기준")
    assert c["adm777:a1"].doc_kind == "행정규칙"


def test_precedents_and_documents():
    chunks, summary = ingest_chunks([FIX / "precedents.jsonl", FIX / "약관.md"])
    c = {c.id: c for c in chunks}
    assert c["prec1001:issues"].text == "[1] 금융회사의 이용자 보호의무의 범위\n[2] 손해배상의 범위"
    assert c["prec1001:holding"].kind == "precedent_holding"
    assert c["prec1001:issues"].title.startswith("대법원 2021. 3. 11. 선고 2020다1234 판결")
    cited = c["prec1001:issues"].metadata["cited_provisions"]
    assert {"law": "테스트금융법", "article": "2의2", "paragraph": 1, "item": None, "group": 1, "groups": [1],
            "old": False} in cited
    assert {(x["law"], x["article"], x["paragraph"], x["group"]) for x in cited} == {
        ("테스트금융법", "2의2", 1, 1), ("민법", "750", None, 2), ("테스트금융법", "4", None, 2)}
    assert [c["약관:s1"].path, c["약관:s2"].text] == [["예금거래 기본약관", "제1장 통칙"], "현금으로 입금할 수 있다."]


def test_cross_references_resolve_within_the_run():
    chunks, _ = ingest_chunks([FIX])
    edges, stats = resolve_refs(chunks)
    got = {(e.source, e.target, e.level) for e in edges}
    assert got == {
        ("900001:a2-2:p2", "900001:a2-2:p1", "paragraph"),  # 제1항
        ("900001:a4:p1", "900001:a2-2:p1", "paragraph"),  # 제2조의2제1항
        ("900001:a4:p2", "900001:a4:p1", "paragraph"),  # 전항
        ("900001:a4:p2", "900001:a4:p3", "paragraph"),  # 같은 조 제3항
        ("900001:a4:p2", "900001:a2", "article"),  # 제2조제1호 (제2조 has no 항: the article itself)
        ("900001:a4:p3", "900001:a1", "article"),  # 제1조부터
        ("900001:a4:p3", "900001:a2", "article"),  # 제2조까지
        ("adm777:a1", "900001:a4", "article"),  # 「테스트금융법」 제4조 from the rule
        ("prec1001:issues", "900001:a2-2:p1", "paragraph"),
        ("prec1001:issues", "900001:a4", "article"),
        ("prec1001:holding", "900001:a2-2:p1", "paragraph"),
        ("prec1001:holding", "900001:a4", "article"),
    }
    # 「민법」 제750조 (twice: statute and precedent) and 은행법 are not in this run
    assert stats.unresolved["law not in this ingest"] == 3
    assert stats.resolved == stats.citations - 3


def test_reference_forms_of_decrees():
    from lextune.ingest.refs import RefIndex, RefStats, chunk_refs
    from lextune.schema import Chunk

    def chunk(cid, law, doc, kind, art, para, text):
        return Chunk(id=cid, doc_id=doc, kind="paragraph", title="", text=text, contents=text, law_name=law,
                     doc_kind=kind, article=art, paragraph=para, parent_id=cid.rsplit(":", 1)[0])

    act = chunk("A:a8:p1", "가상법", "A", "법률", "8", 1, "")
    decree = chunk("D:a12:p1", "가상법 시행령", "D", "시행령", "12", 1, "")
    rule = chunk("R:a3:p2", "가상법 시행규칙", "R", "시행규칙", "3", 2,
                 "법 제8조제1항 및 영 제12조에 따라, 이 규칙 제3조제1항과 전항 및 같은 법 시행령 제12조")
    idx = RefIndex([act, decree, rule, chunk("R:a3:p1", "가상법 시행규칙", "R", "시행규칙", "3", 1, "")])
    edges = {(e.target, e.citation) for e in chunk_refs(rule, idx, RefStats())}
    assert ("A:a8:p1", "법 제8조제1항") in edges
    assert ("D:a12:p1", "영 제12조") in edges or ("D:a12", "영 제12조") in edges
    assert any(t == "R:a3:p1" for t, _ in edges)


def test_ingest_writes_atomically_with_meta(tmp_path):
    out = tmp_path / "out"
    summary = ingest([FIX], out)
    assert sorted(p.name for p in out.iterdir()) == ["chunks.jsonl", "config.yaml", "meta.json", "refs.jsonl"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["type"] == "chunks" and meta["config"]["unit"] == "paragraph"
    assert meta["summary"]["total_chunks"] == summary.total_chunks == len(read_chunks(out))
    assert len(meta["inputs"][str(FIX)]) == 64
    refs = [json.loads(line) for line in (out / "refs.jsonl").read_text().splitlines()]
    assert {"source", "target", "level", "citation", "law"} <= set(refs[0])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary leftovers


def test_bad_input_is_reported_and_the_rest_ingested(tmp_path):
    bad = tmp_path / "src"
    bad.mkdir()
    (bad / "broken.json").write_text('{"법령": ', encoding="utf-8")
    (bad / "other.json").write_text('{"something": 1}', encoding="utf-8")
    (bad / "empty.md").write_text("", encoding="utf-8")
    lines = [json.dumps({"id": "d1", "text": "좋은 줄"}, ensure_ascii=False), "{oops", json.dumps({"id": "d2"})]
    (bad / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (bad / "law.json").write_bytes(LAW_JSON.read_bytes())
    chunks, summary = ingest_chunks([bad])
    problems = {(Path(e.path).name, e.position, e.message.split(" (")[0]) for e in summary.errors}
    assert ("broken.json", "line 1", "not valid JSON") in problems
    assert ("other.json", None, "unknown JSON layout") in problems
    assert ("empty.md", None, "empty file") in problems
    assert ("docs.jsonl", "line 2", "not valid JSON") in problems
    assert ("docs.jsonl", "line 3", "missing or non-string field 'text'") in problems
    assert {c.id for c in chunks} >= {"d1", "900001:a1"}
    out = tmp_path / "out"
    with pytest.raises(InputFormatError, match="broken.json"):
        ingest([bad], out, IngestConfig(strict=True))
    assert not out.exists()  # nothing half-written


def test_cli_ingest_summary(tmp_path):
    res = CliRunner().invoke(app, ["ingest", str(LAW_JSON), str(FIX / "precedents.jsonl"), "-o", str(tmp_path / "o"),
                                   "--unit", "article", "-q"])
    assert res.exit_code == 0, res.output
    assert "references resolved" in res.output and "documents: 법률" in res.output
    assert json.loads((tmp_path / "o" / "meta.json").read_text())["config"]["unit"] == "article"
    res = CliRunner().invoke(app, ["ingest", str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no such file or folder" in res.output


def test_ingest_runs_without_torch():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from lextune.ingest import ingest_chunks\n"
            f"print(len(ingest_chunks([{str(LAW_JSON)!r}])[0]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "7"


SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.mark.skipif(not (SHARED / "legalize-kr.tar.gz").is_file(), reason="needs ../shared/corpus")
def test_json_and_markdown_readers_agree_on_real_statutes():
    """The 49 statutes of ../shared/corpus/laws against their legalize-kr twins: where both files are the
    same version (same 시행일자), >= 99% of article/paragraph units are identical."""
    from lextune.ingest.parity import json_markdown_parity

    result = json_markdown_parity(SHARED / "laws", SHARED / "legalize-kr.tar.gz")
    assert len(result.laws) == 49 and not result.missing
    assert sum(r.same_version for r in result.laws) >= 10
    assert result.share(same_version_only=True) >= 0.99
    assert result.share(same_version_only=False) >= 0.95  # the rest differs by amendments between versions
