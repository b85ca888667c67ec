"""Bad input through the CLI and the readers: a message with its location, never a traceback, markup
read as text, nothing lost that was already done (issue 23's cases 2-7, 9 and 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.errors import InputFormatError
from lextune.jsonl import iter_jsonl

runner = CliRunner()
LAW = Path(__file__).resolve().parents[1] / "src" / "lextune" / "data" / "laws" / "000549.json"


def _law(units, law_id="T1"):
    return {"법령": {"기본정보": {"법령ID": law_id, "법령명_한글": "시험법", "법종구분": {"content": "법률"}},
                   "조문": {"조문단위": units}}}


def _unit(n, text, **extra):
    return {"조문번호": str(n), "조문여부": "조문", "조문제목": f"제목{n}", "조문내용": text, **extra}


def _flat(text: str) -> str:
    """Without white space: Rich wraps long lines, even inside a word of wide Korean characters."""
    return "".join(text.split())


def _failed_cleanly(res, *needles):
    """Exit 2 with one ``error:`` message containing every needle, and no exception but the exit."""
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "error:" in res.output and "Traceback" not in res.output
    text = _flat(res.output)
    for needle in needles:
        assert _flat(needle) in text, (needle, res.output)


def test_messages_with_brackets_are_printed_as_text_not_markup(tmp_path):
    bad_yaml = tmp_path / "run.yaml"
    bad_yaml.write_text("inputs: [a, b\nrun_dir: x\n", encoding="utf-8")
    _failed_cleanly(runner.invoke(app, ["run", str(bad_yaml)]), "run.yaml")  # was rich.errors.MarkupError
    folder = tmp_path / "in" / "[red]dir"
    folder.mkdir(parents=True)
    (folder / "x.json").write_text("{not json", encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(folder / "x.json"), "--out", str(tmp_path / "o"), "-q"])
    assert "[red]dir" in _flat(res.output)  # printed as it is, not as red text


def test_a_text_field_that_looks_like_markup_is_named_as_given(tmp_path, bundled_dir):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "x"}) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "out"), "--text-field", "[/text]", "-q"])
    _failed_cleanly(res, "[/text]")


def test_out_naming_an_existing_file_is_refused_and_the_file_kept(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("my notes", encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(LAW), "--out", str(target), "-q"])
    _failed_cleanly(res, "notes.txt", "existing file")
    assert target.read_text(encoding="utf-8") == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # no hidden .notes.txt.old-PID


@pytest.mark.parametrize("parent", ["file", "proc"])
def test_an_unwritable_output_parent_is_a_message(tmp_path, parent):
    if parent == "file":
        (tmp_path / "f").write_text("x", encoding="utf-8")
        out = tmp_path / "f" / "out"  # NotADirectoryError
    else:
        out = Path("/proc/lextune-no-such/out")  # not creatable, even for root
    res = runner.invoke(app, ["ingest", str(LAW), "--out", str(out), "-q"])
    _failed_cleanly(res, "cannot write the output folder", str(out))


def test_ingest_fails_when_nothing_was_ingested(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("{broken", encoding="utf-8")
    b.write_text(json.dumps({"법령": {}}), encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(a), str(b), "--out", str(tmp_path / "o"), "-q"])
    _failed_cleanly(res, "nothing was ingested", "a.json", "b.json")
    assert not (tmp_path / "o").exists()
    ok = runner.invoke(app, ["ingest", str(a), str(LAW), "--out", str(tmp_path / "o"), "-q"])
    assert ok.exit_code == 0 and "1 problems" in ok.output  # one good input is enough


def test_run_checks_every_section_before_any_stage(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"inputs: [{LAW}]\nrun_dir: {tmp_path / 'run'}\ntrain_biencoder:\n  batch_size: -4\n",
                   encoding="utf-8")
    _failed_cleanly(runner.invoke(app, ["run", str(cfg)]), "train_biencoder.batch_size", "greater than or equal to 1")
    assert not (tmp_path / "run").exists()  # ingest never started
    cfg.write_text(f"inputs: [{LAW}]\nrun_dir: {tmp_path / 'run'}\ntrain_reranker:\n  learning_rate: 0\n",
                   encoding="utf-8")
    _failed_cleanly(runner.invoke(app, ["run", str(cfg)]), "train_reranker.learning_rate")
    for section, needle in (("mine: {range_start: 30, range_end: 20}", "range_start (30) must be below"),
                            ("bm25: {b: 2}", "bm25.b"), ("eval: {rrf_k: 0}", "eval.rrf_k")):
        cfg.write_text(f"inputs: [{LAW}]\nrun_dir: {tmp_path / 'run'}\n{section}\n", encoding="utf-8")
        _failed_cleanly(runner.invoke(app, ["run", str(cfg)]), needle)
    assert not (tmp_path / "run").exists()


def test_wrong_value_types_in_law_json_are_reported_and_the_rest_ingested(tmp_path):
    units = [_unit(1, "제1조(제목1) 좋은 조문이다."),
             _unit(2, 12345),  # 조문내용 as a number
             _unit(3, "제3조(제목3)", 항="① 문자열 항"),  # 항 as a string
             _unit(4, "제4조(제목4)", 항=[{"항번호": "①", "항내용": ["① 첫째 항이다."]}, 7]),
             _unit(5, "제5조(제목5) 또 좋은 조문이다.")]
    src = tmp_path / "law.json"
    src.write_text(json.dumps(_law(units), ensure_ascii=False), encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    text = _flat(res.output)
    assert "법령.조문.조문단위[1].조문내용" in text and "gotint" in text
    assert "법령.조문.조문단위[2].항" in text and "gotstr" in text
    assert "법령.조문.조문단위[3].항[1]" in text
    chunks = [json.loads(line) for line in (tmp_path / "o" / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {c["id"].split(":")[1] for c in chunks} == {"a1", "a5"}, [c["id"] for c in chunks]
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps(_law(units, law_id=["x"]), ensure_ascii=False), encoding="utf-8")
    res = runner.invoke(app, ["ingest", str(listed), "--out", str(tmp_path / "o2"), "-q"])
    _failed_cleanly(res, "법령ID", "gotlist")  # the only input failed: nothing to write
    strict = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "o3"), "-q", "--strict"])
    _failed_cleanly(strict, "law.json", "조문단위[1].조문내용")


def test_json_errors_name_their_real_column(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_bytes(b'{"id": "a", "text": "x"}\n{"id": "b", "text": "x"\r\n')
    with pytest.raises(InputFormatError, match=r"p.jsonl:2: not valid JSON \(Expecting ',' delimiter, column 24\)"):
        list(iter_jsonl(src))


def test_a_missing_optional_dependency_names_its_extra(monkeypatch):
    """One helper, one message format: what needs the package, the import error, and the extra to install."""
    from lextune.errors import LextuneError, MissingExtraError
    from lextune.extras import optional_import
    from lextune.index.fusion import FusionConfig, fuse_runs

    with pytest.raises(MissingExtraError, match=r'^fusion needs ranx \(.*\): pip install "lextune\[index\]"$'):
        monkeypatch.setitem(__import__("sys").modules, "ranx", None)  # an import of ranx now fails
        fuse_runs([{"q": {"a": 1.0}}, {"q": {"b": 2.0}}], FusionConfig(method="wsum"))
    with pytest.raises(ImportError) as err:  # still an ImportError for code that catches those
        optional_import("no_such_module_xyz", "report", "the report")
    assert isinstance(err.value, LextuneError) and 'pip install "lextune[report]"' in str(err.value)


def test_no_module_hand_writes_a_missing_extra_message():
    """Every optional import goes through lextune.extras.optional_import (issue 44 item 4)."""
    src = Path(__file__).resolve().parents[1] / "src" / "lextune"
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py")
                 if p.name != "extras.py" and "raise MissingExtraError(" in p.read_text(encoding="utf-8")]
    assert offenders == [], offenders
