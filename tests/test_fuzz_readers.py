"""Property-based fuzz of every input reader (hypothesis, bounded, derandomized so that CI is repeatable):
whatever a file holds, the reader either reads it or raises a lextune error that names the file (and the
line or field where there is one), never another exception, and the good records around a bad one are kept.

``LEXTUNE_FUZZ_EXAMPLES`` raises the example count per reader (default 40) for a longer local run.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lextune.config import load_config  # noqa: E402
from lextune.errors import LextuneError  # noqa: E402
from lextune.ingest import IngestConfig, ingest_chunks  # noqa: E402
from lextune.jsonl import iter_jsonl  # noqa: E402
from lextune.runs import load_beir, read_qrels, read_trec_run  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_LAW = FIXTURES / "ingest" / "law_900001.json"
EXAMPLES = int(os.environ.get("LEXTUNE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=30) | st.sampled_from(["", "①", "제1조(목적)", "[1]민법 제750조", "<br/>", "\ud800"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON value."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, base: dict):
    """``base`` with one to three places replaced by arbitrary JSON (types law.go.kr never sends)."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        places = [p for p, _ in _paths(obj) if p]
        if not places:
            break
        path = draw(st.sampled_from(places))
        holder = obj
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = draw(json_values)
    return obj


def _dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _ingest_beside_a_good_file(tmp_path: Path, name: str, data: bytes) -> None:
    """Ingest the fuzzed file with a good statute: no exception escapes, the statute is kept, and every
    problem names its file."""
    bad = tmp_path / name
    bad.write_bytes(data)
    chunks, summary = ingest_chunks([bad, GOOD_LAW], IngestConfig())
    assert any(c.id.startswith("900001:") for c in chunks)  # the good file's chunks survive
    for err in summary.errors:
        assert err.path.endswith(name) and err.message


def _law_base() -> dict:
    return json.loads(GOOD_LAW.read_text(encoding="utf-8"))


@FUZZ
@given(data=mutated(_law_base()))
def test_statute_json(tmp_path_factory, data):
    _ingest_beside_a_good_file(tmp_path_factory.mktemp("law"), "law_fuzz.json", _dump(data))


@FUZZ
@given(data=mutated(json.loads((FIXTURES / "ingest" / "admrule_777.json").read_text(encoding="utf-8"))))
def test_admin_rule_json(tmp_path_factory, data):
    _ingest_beside_a_good_file(tmp_path_factory.mktemp("adm"), "adm_fuzz.json", _dump(data))


PRECEDENT = json.loads((FIXTURES / "ingest" / "precedents.jsonl").read_text(encoding="utf-8").splitlines()[0])


@FUZZ
@given(records=st.lists(mutated(PRECEDENT), min_size=1, max_size=3), junk=st.binary(max_size=40))
def test_precedent_jsonl(tmp_path_factory, records, junk):
    """Bad lines are reported by line; the good precedent line before them is still chunked."""
    tmp = tmp_path_factory.mktemp("prec")
    lines = [_dump(PRECEDENT)] + [_dump(r) for r in records] + [junk.replace(b"\n", b" ")]
    bad = tmp / "prec_fuzz.jsonl"
    bad.write_bytes(b"\n".join(lines) + b"\n")
    chunks, summary = ingest_chunks([bad, GOOD_LAW], IngestConfig())
    first_id = str(PRECEDENT.get("판례일련번호") or "")
    assert any(first_id and first_id in c.id for c in chunks)
    for err in summary.errors:
        assert err.path.endswith("prec_fuzz.jsonl") and (err.position or "").startswith("line ")


MD_LINES = st.sampled_from(["---", "법령ID: 900002", "제목: 시험법", "# 시험법", "## 제1장 총칙", "##### 제1조 (목적)",
                            "##### 제2조의2", "**①** 첫째 항이다.", "1. 첫째 호", "  가. 목", "", "###### 제",
                            "**②**", "[본조신설 2020. 1. 1.]", "<개정 2021.>", "| 표 | 칸 |"])


@FUZZ
@given(lines=st.lists(MD_LINES | st.text(max_size=30), min_size=1, max_size=25))
def test_legalize_markdown(tmp_path_factory, lines):
    text = "\n".join(lines)
    _ingest_beside_a_good_file(tmp_path_factory.mktemp("md"), "fuzz.md",
                               text.encode("utf-8", "surrogatepass"))


GOOD_RECORD = b'{"id": "good", "text": "\xec\xa2\x8b\xec\x9d\x80 \xec\xa4\x84"}'


@FUZZ
@given(junk=st.lists(st.binary(max_size=60) | json_values.map(_dump), min_size=1, max_size=4))
def test_generic_jsonl_keeps_the_good_lines(tmp_path_factory, junk):
    path = tmp_path_factory.mktemp("jsonl") / "records.jsonl"
    lines = [GOOD_RECORD] + [j.replace(b"\n", b" ").replace(b"\r", b" ") for j in junk] + [GOOD_RECORD]
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        rows = list(iter_jsonl(path, skip_bad=True))
    except LextuneError as err:  # pragma: no cover - skip_bad never raises for a line
        pytest.fail(f"skip_bad raised {err}")
    assert rows[0] == (1, {"id": "good", "text": "좋은 줄"})
    assert rows[-1] == (len(lines), {"id": "good", "text": "좋은 줄"})
    try:
        list(iter_jsonl(path))
    except LextuneError as err:
        assert str(err).startswith(f"{path}:")


def _beir(folder: Path, corpus: bytes, queries: bytes, qrels: bytes) -> None:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_bytes(corpus)
    (folder / "queries.jsonl").write_bytes(queries)
    (folder / "qrels" / "dev.tsv").write_bytes(qrels)


def _line_junk():
    return st.lists(st.binary(max_size=50) | json_values.map(_dump)
                    | st.sampled_from([b"q1\td1\t1", b"q1 0 d1 2", b"q1\td1", b"q1\td1\t0.5", b"a\tb\tc\td\te"]),
                    max_size=4).map(lambda xs: b"\n".join(x.replace(b"\n", b" ") for x in xs))


@FUZZ
@given(corpus=_line_junk(), queries=_line_junk(), qrels=_line_junk(), which=st.integers(0, 2))
def test_beir_folders(tmp_path_factory, corpus, queries, qrels, which):
    folder = tmp_path_factory.mktemp("beir")
    good = [b'{"_id": "d1", "title": "t", "text": "x"}\n', b'{"_id": "q1", "text": "y"}\n',
            b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"]
    parts = [g + (junk if i == which else b"") for i, (g, junk) in enumerate(zip(good, (corpus, queries, qrels), strict=True))]
    _beir(folder, *parts)
    try:
        ds = load_beir(folder)
    except LextuneError as err:
        assert str(folder) in str(err)
        return
    assert "d1" in ds.corpus and ds.queries.get("q1") == "y" and ds.qrels["q1"]["d1"] >= 0


@FUZZ
@given(junk=_line_junk())
def test_trec_runs(tmp_path_factory, junk):
    path = tmp_path_factory.mktemp("run") / "r.trec"
    path.write_bytes(b"q1 Q0 d1 1 2.5 t\n" + junk + b"\n")
    try:
        run = read_trec_run(path)
    except LextuneError as err:
        assert str(err).startswith(f"{path}")
        return
    assert run["q1"]["d1"] == 2.5
    assert all(isinstance(s, float) and s == s and abs(s) != float("inf") for d in run.values() for s in d.values())


@FUZZ
@given(junk=_line_junk())
def test_qrels(tmp_path_factory, junk):
    path = tmp_path_factory.mktemp("qrels") / "dev.tsv"
    path.write_bytes(b"query-id\tcorpus-id\tscore\nq1\td1\t2\n" + junk + b"\n")
    try:
        qrels = read_qrels(path)
    except LextuneError as err:
        assert str(err).startswith(f"{path}:")
        return
    assert qrels["q1"]["d1"] in (0, 1, 2) or qrels["q1"]["d1"] >= 0
    assert all(isinstance(r, int) and r >= 0 for d in qrels.values() for r in d.values())


YAML_BITS = st.sampled_from(["inputs: [a.json]", "inputs: [", "train_biencoder:", "  batch_size: -4",
                             "  batch_size: x", "eval: {k_rerank: 0}", "synth: {generators: [nope]}",
                             "mine: []", "- 1", "run_dir: '[red]x'", "bm25:\n  k1: -1", "::", "\t", "targeted: null",
                             "train_reranker: {learning_rate: 0}", "eval:\n  datasets: 3", "layer_cache_gb: -1"])


@FUZZ
@given(lines=st.lists(YAML_BITS | st.text(max_size=20), min_size=1, max_size=6))
def test_run_yaml_configs(tmp_path_factory, lines):
    from lextune.pipeline.config import RunConfig

    path = tmp_path_factory.mktemp("yaml") / "run.yaml"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        load_config(RunConfig, path)
    except LextuneError as err:
        assert str(path) in str(err) or "RunConfig" in str(err)


def _document_bases(folder: Path) -> dict[str, bytes]:
    """One real file of each document format (made by tests/docfixtures.py), to mutate."""
    import docfixtures as fx

    out = {"docx": fx.write_docx(folder / "b.docx").read_bytes(), "hwpx": fx.write_hwpx(folder / "b.hwpx").read_bytes(),
           "hwp": fx.write_hwp(folder / "b.hwp").read_bytes(), "html": fx.terms_html().encode("utf-8")}
    if fx.chromium():
        out["pdf"] = fx.print_pdf(fx.terms_html(chrome=False), folder / "b.pdf").read_bytes()
    return out


@st.composite
def _byte_edits(draw, size: int):
    """One to eight edits of a file of ``size`` bytes: overwrite, cut or insert a few bytes somewhere."""
    edits = []
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(0, size - 1)))
        edits.append((draw(st.sampled_from(["set", "cut", "insert"])), at, draw(st.binary(min_size=1, max_size=6))))
    return edits


def _apply(data: bytes, edits) -> bytes:
    for op, at, junk in edits:
        at = min(at, len(data))
        if op == "set":
            data = data[:at] + junk + data[at + len(junk):]
        elif op == "cut":
            data = data[:at] + data[at + len(junk):]
        else:
            data = data[:at] + junk + data[at:]
    return data


@pytest.fixture(scope="module")
def document_bases(tmp_path_factory):
    return _document_bases(tmp_path_factory.mktemp("docbase"))


@pytest.mark.parametrize("fmt", ["pdf", "docx", "hwpx", "hwp", "html"])
@FUZZ
@given(edits=_byte_edits(20000), head=st.booleans())
def test_document_readers_on_damaged_files(tmp_path_factory, document_bases, fmt, edits, head):
    """A damaged PDF, DOCX, HWPX, HWP or HTML file is read or named with a reason; never another exception."""
    if fmt not in document_bases:
        pytest.skip("needs chromium to print the PDF")
    base = document_bases[fmt]
    if head:  # the edits land in the first bytes, where signatures and headers are
        edits = [(op, at % 64, junk) for op, at, junk in edits]
    else:
        edits = [(op, at % len(base), junk) for op, at, junk in edits]
    _ingest_beside_a_good_file(tmp_path_factory.mktemp(fmt), f"damaged.{fmt}", _apply(base, edits))
