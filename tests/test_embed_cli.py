"""`lextune embed` through typer's runner: outputs, bad input, resume after a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lextune.cli.main import app

runner = CliRunner()


def write_jsonl(path, rows, raw_lines=()):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return path


ROWS = [
    {"id": "a", "text": "제1조(목적) 이 법은 전자금융거래의 법률관계를 명확히 하여 ..."},
    {"id": "b", "text": "예금보험공사는 보험금을 지급한다."},
    {"id": "c", "text": ""},  # empty strings are embedded, not dropped
    {"id": 7, "text": "숫자 id도 받는다"},
]


def test_embed_npz_and_meta(bundled_dir, encoder, tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", ROWS)
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "out"), "--type", "passage", "-q"])
    assert res.exit_code == 0, res.output
    data = np.load(tmp_path / "out" / "embeddings.npz")
    assert data["ids"].tolist() == ["a", "b", "c", "7"]
    assert data["embeddings"].shape == (4, 384) and data["embeddings"].dtype == np.float32
    expected = encoder.encode_passages([r["text"] for r in ROWS])
    assert np.allclose(data["embeddings"], expected, atol=1e-5)  # length sorting keeps row order
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["type"] == "embeddings" and meta["rows"] == 4
    assert meta["config"]["model"]["spec"] == "bundled:multilingual-e5-small"
    assert not list((tmp_path / "out").glob(".parts-*"))


def test_embed_npy_queries_custom_fields(bundled_dir, encoder, tmp_path):
    src = write_jsonl(tmp_path / "q.jsonl", [{"qid": "q1", "question": "보험금 지급 한도는?"}])
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "out"), "--type", "query",
                              "--format", "npy", "--prefix", "queries", "--id-field", "qid",
                              "--text-field", "question", "-q"])
    assert res.exit_code == 0, res.output
    ids = np.load(tmp_path / "out" / "queries_ids.npy")
    emb = np.load(tmp_path / "out" / "queries_embeds.npy")
    assert ids.tolist() == ["q1"]
    assert np.allclose(emb, encoder.encode_queries(["보험금 지급 한도는?"]), atol=1e-5)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "p.jsonl:3: not valid JSON"),
        ('{"id": "x"}', "p.jsonl:3 (field 'text'): missing field"),
        ('{"text": "x"}', "p.jsonl:3 (field 'id'): missing field"),
        ('{"id": "x", "text": 5}', "p.jsonl:3 (field 'text'): expected a string"),
        ("[1, 2]", "p.jsonl:3: expected a JSON object"),
    ],
)
def test_bad_lines_name_file_line_and_field(bundled_dir, tmp_path, line, message):
    src = write_jsonl(tmp_path / "p.jsonl", ROWS[:2], raw_lines=[line])
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert not (tmp_path / "out" / "embeddings.npz").exists()


def test_invalid_utf8_and_skip_bad(bundled_dir, tmp_path):
    src = tmp_path / "p.jsonl"
    write_jsonl(src, ROWS[:2])
    with open(src, "ab") as f:
        f.write(b'{"id": "bad", "text": "\xff\xfe"}\n')
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "o1"), "-q"])
    assert res.exit_code == 2 and "p.jsonl:3: invalid UTF-8" in " ".join(res.output.split())
    with open(src, "a", encoding="utf-8") as f:
        f.write('{not json\n{"id": "x"}\n')
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "o2"), "-q", "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "skipped 3 bad lines" in res.output
    assert np.load(tmp_path / "o2" / "embeddings.npz")["ids"].tolist() == ["a", "b"]


def test_duplicate_ids_are_reported(bundled_dir, tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [ROWS[0], ROWS[0], ROWS[1]])
    res = runner.invoke(app, ["embed", "-i", str(src), "-o", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0
    assert "1 duplicate ids" in res.output
    assert np.load(tmp_path / "out" / "embeddings.npz")["embeddings"].shape == (3, 384)


def test_crashed_run_resumes_where_it_stopped(encoder, tmp_path, monkeypatch):
    from lextune.models.embed import embed_file

    rows = [{"id": f"r{i}", "text": f"제{i}조 {'가' * (i % 7)} 내용 {i}"} for i in range(10)]
    src = write_jsonl(tmp_path / "p.jsonl", rows)
    calls = {"n": 0}
    real = encoder.encode_passages

    def flaky(texts, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(texts, **kw)

    monkeypatch.setattr(encoder, "encode_passages", flaky)
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed_file(encoder, src, tmp_path / "out", part_size=3, progress=False)
    assert not (tmp_path / "out" / "embeddings.npz").exists()
    assert len(list((tmp_path / "out").glob(".parts-*/part-*.npy"))) == 2
    res = embed_file(encoder, src, tmp_path / "out", part_size=3, progress=False)
    assert (res.resumed_parts, res.encoded_parts) == (2, 2)
    monkeypatch.setattr(encoder, "encode_passages", real)
    fresh = embed_file(encoder, src, tmp_path / "fresh", part_size=3, progress=False)
    assert fresh.encoded_parts == 4
    a = np.load(tmp_path / "out" / "embeddings.npz")["embeddings"]
    b = np.load(tmp_path / "fresh" / "embeddings.npz")["embeddings"]
    assert np.allclose(a, b, atol=1e-6)
