"""Court decisions as queries: 참조조문 parsing, item/group alignment, resolution against the run's own
corpus (structured chunks and BEIR title corpora), drop counts, the generators in synth, CLI and run YAML."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.ingest import ingest, ingest_chunks
from lextune.ingest.refs import RefIndex, parse_reference_groups
from lextune.lawnames import norm_name
from lextune.schema import Chunk
from lextune.synth.pipeline import SynthConfig, synth
from lextune.synth.precedents import (
    PrecedentStats,
    align,
    item_question,
    precedent_item_queries,
    split_items,
)

FIX = Path(__file__).parent / "fixtures" / "ingest"


def para(law: str, doc: str, art: str, p: int | None, text: str = "본문", item: str | None = None) -> Chunk:
    aid = f"{doc}:a{art.replace('의', '-')}"
    cid = aid + (f":p{p}" if p else "") + (f":i{item}" if item else "")
    return Chunk(id=cid, doc_id=doc, kind="item" if item else "paragraph" if p else "article", title=f"{law} 제{art}조",
                 text=text, contents=text, law_name=law, doc_kind="법률", article=art, paragraph=p, item=item,
                 parent_id=aid if p else None)


@pytest.fixture()
def corpus() -> list[Chunk]:
    return [para("형법", "H", "355", 1), para("형법", "H", "355", 2), para("형법", "H", "356", None),
            para("형법", "H", "30", None),
            para("민법", "M", "750", None), para("민법", "M", "751", 1), para("민법", "M", "751", 2),
            para("아동ㆍ청소년의 성보호에 관한 법률", "A", "7", 1),
            para("성폭력범죄의 처벌 등에 관한 특례법", "S", "3", 1), para("성폭력범죄의 처벌 등에 관한 특례법", "S", "3", 2),
            para("자본시장과 금융투자업에 관한 법률", "K", "178", 1),
            para("대한민국헌법", "C", "37", 2)]


def cites(text: str) -> list[tuple]:
    return [(g.labels, c.law, c.article, c.paragraph, c.item, c.old, c.addendum)
            for g in parse_reference_groups(text) for c in g.citations]


def test_reference_groups_carry_law_article_and_labels():
    got = cites("[1]형법 제355조 제1항,제356조 / [2][3]형법 제53조,제55조 제1항 제3호,제6호,제2항 / "
                "[4]같은 법 제30조, 민법 제750조 내지 제752조, 민법 부칙 제2조 / [5]제751조")
    assert got == [
        ([1], "형법", "355", 1, None, False, False), ([1], "형법", "356", None, None, False, False),
        ([2, 3], "형법", "53", None, None, False, False), ([2, 3], "형법", "55", 1, "3", False, False),
        ([2, 3], "형법", "55", 1, "6", False, False),  # a bare 제6호 continues 제55조 제1항
        ([2, 3], "형법", "55", 2, None, False, False),  # a bare 제2항 continues 제55조
        ([4], "형법", "30", None, None, False, False),  # 같은 법: the previous law
        ([4], "민법", "750", None, None, False, False), ([4], "민법", "751", None, None, False, False),
        ([4], "민법", "752", None, None, False, False),  # 내지: the range
        ([4], "민법", "2", None, None, False, True),  # 부칙: flagged
        ([5], "민법", "751", None, None, False, False)]  # an empty prefix: the previous law, across groups


def test_old_versions_and_current_notes():
    text = ("[1]형법 제339조,구 성폭력범죄의 처벌 및 피해자보호 등에 관한 법률(2010. 4. 15. 법률 제10258호로 개정되기 "
            "전의 것) 제5조 제2항(현행 성폭력범죄의 처벌 등에 관한 특례법 제3조 제2항 참조),제6조 제1항 / [2]형법 제333조")
    groups = parse_reference_groups(text)
    c = groups[0].citations
    assert [(x.law, x.article, x.paragraph, x.old) for x in c] == [
        ("형법", "339", None, False), ("성폭력범죄의 처벌 및 피해자보호 등에 관한 법률", "5", 2, True),
        ("성폭력범죄의 처벌 및 피해자보호 등에 관한 법률", "6", 1, True)]  # 제10258호 in the note is no citation
    assert (c[1].current.law, c[1].current.article, c[1].current.paragraph) == ("성폭력범죄의 처벌 등에 관한 특례법", "3", 2)
    assert c[2].current is None
    assert [x.law for x in groups[1].citations] == ["형법"]  # the old flag ends with a new law


def test_law_names_match_after_nfkc_middle_dots_aliases_and_renames(corpus):
    assert norm_name("아동ㆍ청소년의 성보호에 관한 법률") == norm_name("아동·청소년의성보호에관한법률")
    index = RefIndex(corpus)
    assert index.doc_for("아동·청소년의 성보호에 관한 법률") == "A"
    assert index.doc_for("아동ㆍ청소년의성보호에관한법률") == "A"
    assert index.doc_for("헌법") == "C"
    assert index.doc_for("증권거래법") == "K"  # a former name, not in this corpus -> its successor
    assert index.doc_for("은행법") is None
    own = RefIndex([para("증권거래법", "E", "1", None), *corpus])
    assert own.doc_for("증권거래법") == "E"  # a corpus that has the former law keeps it


def test_items_split_on_labels_and_align_with_groups():
    assert split_items("[1] 가의 범위<br/>[2] 나의 요건 및 [3]의 관계는 아님<br/>〔3〕 다") == [
        ([1], "가의 범위"), ([2], "나의 요건 및 [3]의 관계는 아님"), ([3], "다")]
    assert split_items("라벨 없는 한 문장") == [([], "라벨 없는 한 문장")]
    items = split_items("[1] 가 <br/>[2] 나 <br/>[3] 다")
    groups = parse_reference_groups("[1][2] 민법 제750조 / [3] 형법 제30조")
    got = [[(c.law, c.article) for c in cs] for cs in align(items, groups)]
    assert got == [[("민법", "750")], [("민법", "750")], [("형법", "30")]]
    one = split_items("라벨 없는 판시사항")
    assert [[c.article for c in cs] for cs in align(one, parse_reference_groups("민법 제750조, 제751조"))] == [
        ["750", "751"]]
    two = split_items("[1] 가 <br/>[2] 나")
    assert align(two, parse_reference_groups("민법 제750조")) == [[], []]  # unlabelled refs, labelled items


@pytest.mark.parametrize(("raw", "question"), [
    ("[1] 업무상횡령죄의 ‘불법영득의사’가 인정되는지 여부(적극)", "업무상횡령죄의 ‘불법영득의사’가 인정되는가?"),
    ("소송상 지위의 당연승계인(=상속인)", "소송상 지위의 당연승계인"),
    ("강도죄가 성립하는지 여부(원칙적 소극)<br/>", "강도죄가 성립하는가?"),
    ("처분이 적법한 것인지 여부", "처분이 적법한 것인가?"),
    ("불법영득의사가 인정되는지 여부(적극) 및 그 판단 기준", "불법영득의사가 인정되는지 여부 및 그 판단 기준"),
])
def test_items_become_questions(raw, question):
    assert item_question(raw) == question


def _decision(pid: str, issues: str, refs: str, holding: str = "", **kw) -> dict:
    return {"판례일련번호": pid, "사건번호": f"2020다{pid}", "법원명": "대법원", "선고일자": "20210311",
            "사건명": "손해배상(기)", "판시사항": issues, "판결요지": holding, "참조조문": refs, **kw}


def _write(path: Path, records: list, bad_line: str | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    if bad_line is not None:
        lines.insert(1, bad_line)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_positives_multi_positive_and_drops_by_reason(corpus, tmp_path, caplog):
    f = _write(tmp_path / "prec.jsonl.gz", [
        _decision("1", "[1] 횡령죄가 성립하는지 여부(적극)<br/>[2] 불법행위의 책임<br/>[3] 은행의 의무에 관한 사례",
                  "[1]형법 제355조 제1항,제356조 / [2]민법 제750조,제751조,제999조,민법 부칙 제2조 / [3]은행법 제3조"),
        _decision("2", "[1] 특수강도강간죄로 의율할 수 있는지 여부",
                  "[1]구 성폭력범죄의 처벌 및 피해자보호 등에 관한 법률(2010. 4. 15. 법률 제10258호로 개정되기 전의 것) "
                  "제5조 제2항(현행 성폭력범죄의 처벌 등에 관한 특례법 제3조 제2항 참조),구 형법(1995. 12. 29. 개정되기 "
                  "전의 것) 제30조, 형법 제355조 제5항, 아동·청소년의 성보호에 관한 법률 제7조"),
        _decision("3", "", "[1]민법 제750조")],  # no 판시사항: no query
        bad_line="{oops")
    stats = PrecedentStats()
    qs = {q.id: q for q in precedent_item_queries(corpus, "precedents", [f], stats)}
    assert set(qs) == {"precedents:1:1", "precedents:1:2", "precedents:2:1"}
    assert qs["precedents:1:1"].positives == ["H:a355:p1", "H:a356"]  # 항 -> that paragraph; article -> article
    assert qs["precedents:1:1"].text == "횡령죄가 성립하는가?"
    assert qs["precedents:1:2"].positives == ["M:a750", "M:a751:p1", "M:a751:p2"]  # article -> every paragraph
    assert qs["precedents:2:1"].positives == ["S:a3:p2", "H:a30", "A:a7:p1"]  # 현행 note; 구 by article number
    meta = qs["precedents:2:1"].metadata
    assert meta["old_version"] is True and meta["case_no"] == "2020다2" and meta["date"] == "2021-03-11"
    assert qs["precedents:1:1"].source_doc == "prec1" and qs["precedents:1:1"].generator == "precedents"
    d = stats.to_dict()
    assert d["dropped"] == {"law not in corpus": 1, "article missing": 1, "paragraph missing": 1, "부칙": 1,
                            "unparsable": 0}
    assert (d["decisions"], d["items"], d["queries"], d["items_without_resolved_citation"]) == (2, 4, 3, 1)
    assert d["resolved"] == 7 and d["via_current_note"] == 1 and d["resolved_old"] == 2
    assert d["bad_records"] == 1 and "prec.jsonl.gz:2: not valid JSON" in d["bad_examples"][0]


def test_holdings_are_their_own_kind(corpus, tmp_path):
    f = _write(tmp_path / "p.jsonl", [_decision("7", "[1] 가", "[1]민법 제750조", holding="[1] 불법행위자는 배상한다.")])
    (q,) = precedent_item_queries(corpus, "holdings", [f])
    assert (q.id, q.generator, q.text, q.positives) == ("holdings:7:1", "holdings", "불법행위자는 배상한다.", ["M:a750"])


def test_a_beir_corpus_whose_titles_name_the_article(tmp_path):
    rows = [{"_id": "K1", "title": "민법 406조 (채권자취소권)", "text": "①채무자가 채권자를 해함을 알고 한 법률행위"},
            {"_id": "K2", "title": "민법 406조 (채권자취소권)", "text": "② 전항의 소는 안 날로부터 1년"},
            {"_id": "K3", "title": "형법 제329조(절도)", "text": "타인의 재물을 절취한 자는 처벌한다."},
            {"_id": "K4", "title": "간접투자자산 운용업법 106조  (투자신탁의 합병)", "text": "②합병계획서"}]
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    chunks, _ = ingest_chunks([beir / "corpus.jsonl"])
    f = _write(tmp_path / "p.jsonl", [_decision(
        "9", "[1] 사해행위<br/>[2] 절도<br/>[3] 합병",
        "[1]민법 제406조 제2항 / [2]형법 제329조 제1항 / [3]간접투자자산운용업법 제106조, 민법 제406조 제3항")])
    stats = PrecedentStats()
    qs = {q.id: q.positives for q in precedent_item_queries(chunks, "precedents", [f], stats)}
    # 제1항 of an article without numbered paragraphs is the article; the old law is in this corpus itself
    assert qs == {"precedents:9:1": ["K2"], "precedents:9:2": ["K3"], "precedents:9:3": ["K4"]}
    assert stats.dropped["paragraph missing"] == 1


def test_synth_with_precedents_splits_by_decision_and_cli(tmp_path):
    ingest([FIX / "law_900001.json"], tmp_path / "chunks")
    decisions = [_decision(str(i), f"[1] 금융회사 보호의무 {i}번 쟁점이 무엇인지 여부<br/>[2] 이용자 보호 방법 {i}",
                           "[1]테스트금융법 제2조의2 제1항 / [2]테스트금융법 제2조의2") for i in range(1, 21)]
    f = _write(tmp_path / "prec.jsonl", decisions)
    res = CliRunner().invoke(app, ["synth", "--chunks", str(tmp_path / "chunks"), "--out", str(tmp_path / "q"),
                                   "-g", "precedents", "--precedents", str(f), "--set", "dev_fraction=0.3",
                                   "--set", "near_duplicate=0.95"])
    assert res.exit_code == 0, res.output
    assert "precedents" in res.output and "law not in corpus" in res.output
    queries = [json.loads(line) for line in (tmp_path / "q" / "queries.jsonl").read_text().splitlines()]
    assert queries and {q["generator"] for q in queries} == {"precedents"}
    by_split: dict[str, set[str]] = {}
    for q in queries:
        by_split.setdefault(q["split"], set()).add(q["source_doc"])
    assert by_split["train"] and by_split["dev"] and not by_split["train"] & by_split["dev"]
    two = next(q for q in queries if q["_id"].endswith(":2"))
    assert two["positives"] == ["900001:a2-2:p1", "900001:a2-2:p2"]
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    assert meta["summary"]["precedents"]["precedents"]["queries"] == 40
    assert str(f) in meta["inputs"]
    qrels = (tmp_path / "q" / "qrels" / "train.tsv").read_text().splitlines()
    assert sum(1 for line in qrels if line.endswith("\t1")) > len(by_split["train"])  # multi-positive rows


def test_precedent_generators_need_files(tmp_path):
    ingest([FIX / "law_900001.json"], tmp_path / "chunks")
    from lextune.errors import ConfigError

    with pytest.raises(ConfigError, match="--precedents"):
        synth(tmp_path / "chunks", tmp_path / "q", SynthConfig(generators=["holdings"]))


def test_run_yaml_takes_precedents(tmp_path):
    from lextune.config import load_config
    from lextune.pipeline.config import RunConfig

    y = tmp_path / "run.yaml"
    y.write_text("inputs: [laws/]\nsynth:\n  generators: [title, precedents]\n  precedents: [prec.jsonl.gz]\n",
                 encoding="utf-8")
    cfg = load_config(RunConfig, y, [])
    assert cfg.synth.precedents == ["prec.jsonl.gz"] and "precedents" in cfg.synth.generators


def test_subitems_and_bracket_notes_are_no_law_names():
    got = cites("[1]민법 제2조 제1호 (가)목, 제3호 가목, 상법 제3조[현행 상법 제4조 참조], 제5조 [행정처분일반] / [2] 목, "
                "형법 제1조, 공동주택관리령 제16조 제1항 [별표 7], 제17조")
    assert [(law, art, item) for _, law, art, _, item, _, _ in got] == [
        ("민법", "2", "1"), ("민법", "2", "3"), ("상법", "3", None), ("상법", "5", None), ("형법", "1", None),
        ("공동주택관리령", "16", None), ("공동주택관리령", "17", None)]
    assert parse_reference_groups("상법 제3조[현행 상법 제4조 참조]")[0].citations[0].current.article == "4"


def test_a_former_name_is_resolved_and_flagged(corpus, tmp_path):
    f = _write(tmp_path / "p.jsonl", [_decision("5", "[1] 시세조종의 의미", "[1]구 증권거래법 제178조 제1항")])
    stats = PrecedentStats()
    (q,) = precedent_item_queries(corpus, "precedents", [f], stats)
    assert q.positives == ["K:a178:p1"] and q.metadata["former_law_name"] and q.metadata["old_version"]
    assert stats.via_rename == 1


TREE = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "legalize-kr.tar.gz"


@pytest.mark.skipif(not TREE.is_file(), reason="needs ../shared/corpus/legalize-kr.tar.gz")
def test_every_alias_and_rename_names_a_law_of_the_body_of_law():
    import tarfile

    from lextune.lawnames import LAW_ALIASES, LAW_RENAMES

    with tarfile.open(TREE) as tar:
        laws = {norm_name(m.name.split("/")[1]) for m in tar.getmembers() if m.name.count("/") >= 2}
    for old, new in {**LAW_ALIASES, **LAW_RENAMES}.items():
        assert norm_name(new) in laws, new
        assert norm_name(old) not in laws, old  # a name still in force would shadow nothing: no entry needed


def test_law_go_kr_json_files_lists_wrappers_and_gzip(corpus, tmp_path):
    one = _decision("11", "[1] 가", "[1]민법 제750조")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "one.json").write_text(json.dumps({"PrecService": one}, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "d" / "many.json.gz").write_bytes(gzip.compress(json.dumps(
        [_decision("12", "[1] 나", "[1]형법 제30조"), "junk"], ensure_ascii=False).encode()))
    (tmp_path / "d" / "broken.json").write_text("{", encoding="utf-8")
    (tmp_path / "d" / "notes.txt").write_text("not a decision", encoding="utf-8")
    stats = PrecedentStats()
    got = {q.id: q.positives for q in precedent_item_queries(corpus, "precedents", [tmp_path / "d"], stats)}
    assert got == {"precedents:11:1": ["M:a750"], "precedents:12:1": ["H:a30"]}
    assert stats.bad_records == 2  # the broken file and the list's non-object, each named
    assert any("broken.json" in e for e in stats.bad_examples) and any("many.json.gz[1]" in e for e in stats.bad_examples)
    from lextune.errors import InputFormatError

    with pytest.raises(InputFormatError, match="nowhere.jsonl"):
        list(precedent_item_queries(corpus, "precedents", [tmp_path / "nowhere.jsonl"]))
