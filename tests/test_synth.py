"""Synthetic queries: offline generators, filters, document split, and the LLM client against a real
OpenAI-compatible HTTP server on loopback that misbehaves (429, 500, timeouts, malformed JSON)."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lextune.cli.main import app
from lextune.ingest import ingest, ingest_chunks
from lextune.ingest.refs import resolve_refs
from lextune.schema import Chunk
from lextune.synth.filters import copy_ratio, filter_queries
from lextune.synth.generators import (
    SynthQuery,
    _question,
    ict_queries,
    question_queries,
    ref_queries,
    title_queries,
)
from lextune.synth.llm import LLMConfig, LLMQueryGenerator, parse_json_queries
from lextune.synth.pipeline import SynthConfig, split_documents, synth

FIX = Path(__file__).parent / "fixtures" / "ingest"
LAW = FIX / "law_900001.json"


@pytest.fixture(scope="module")
def law_chunks():
    chunks, _ = ingest_chunks([LAW])
    return chunks


def test_title_queries_cover_every_paragraph_of_the_article(law_chunks):
    qs = {q.id: q for q in title_queries(law_chunks, random.Random(0))}
    q = qs["title:900001:a2-2"]
    assert q.positives == ["900001:a2-2:p1", "900001:a2-2:p2"]
    assert "이용자 보호" in q.text and "테스트금융법" in q.text and q.generator == "title"


def _section(cid: str, title: str, text: str) -> Chunk:
    return Chunk(id=cid, doc_id=cid, kind="section", title=title, text=text, contents=f"{title}\n{text}")


def test_title_queries_read_headings_of_passages_without_structure():
    chunks = [_section("K1", "상법 200조 2 직무대행자의 권한", "① 직무대행자는 ... 하지 못한다."),
              _section("K2", "상법 200조 2 직무대행자의 권한", "② 직무대행자가 제1항에 위반한 행위를 한 경우에도 ..."),
              _section("K3", "간접투자자산 운용업법 106조  (투자신탁의 합병)", "② 자산운용회사는 ..."),
              _section("K4", "상법 200조  직무집행정지", "..."),
              _section("K5", "부칙", "이 법은 공포한 날부터 시행한다.")]
    qs = {q.id: q for q in title_queries(chunks, random.Random(0))}
    assert sorted(qs) == ["title:간접투자자산 운용업법:106", "title:상법:200", "title:상법:200의2"]
    assert qs["title:상법:200의2"].positives == ["K1", "K2"]  # every paragraph of the article
    assert "직무대행자의 권한" in qs["title:상법:200의2"].text and "상법" in qs["title:상법:200의2"].text
    assert "투자신탁의 합병" in qs["title:간접투자자산 운용업법:106"].text


def test_title_queries_of_a_sampled_pool_name_the_whole_article(tmp_path):
    # A BEIR corpus of two articles, one paragraph sampled: its article's query names both of that article's
    # paragraphs (the unsampled one would otherwise be mined as a false negative).
    rows = [{"_id": "K1", "title": "상법 44조  채무인수를 광고한 양수인의 책임", "text": "영업양수인이 양도인의 채무를 인수할 것을 광고한 때에는 양수인도 변제할 책임이 있다."},
            {"_id": "K2", "title": "상법 44조  채무인수를 광고한 양수인의 책임", "text": "② 제1항의 경우 양도인의 책임은 2년이 경과하면 소멸한다."},
            {"_id": "K3", "title": "상법 45조  영업양도인의 책임의 존속기간", "text": "양도인의 제3자에 대한 채무는 영업양도 후 2년이 경과하면 소멸한다."}]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    ingest([corpus], tmp_path / "chunks")
    synth(tmp_path / "chunks", tmp_path / "q", SynthConfig(generators=["title", "ict"], max_chunks=1, dev_fraction=0.0,
                                                           seed=1))
    made = {q["_id"]: q["positives"] for q in map(json.loads, (tmp_path / "q" / "queries.jsonl").open(encoding="utf-8"))}
    assert made == {"ict:K1": ["K1"], "title:상법:44": ["K1", "K2"]}  # K1 sampled; K2 is named though it was not


@pytest.mark.parametrize(("sentence", "question"), [
    ("② 자산운용회사는 투자신탁을 합병하고자 하는 경우 합병계획서를 작성하여 수익자총회의 승인을 얻어야 한다. <개정 2004.10.5>",
     "자산운용회사는 투자신탁을 합병하고자 하는 경우 어떻게 하여야 하는가?"),
    ("금융위원회는 보고내용이 금융소비자의 권익에 반하는 것으로 판단되는 경우에는 시정을 명할 수 있다.",
     "금융위원회는 보고내용이 금융소비자의 권익에 반하는 것으로 판단되는 경우에는 무엇을 할 수 있는가?"),
    ("공무소의 전자기록을 위작하거나 변작한 자는 10년 이하의 징역에 처한다.",
     "공무소의 전자기록을 위작하거나 변작한 자는 어떤 처벌을 받는가?"),
    ("“신용정보”란 금융거래 등 상거래에서 거래 상대방의 신용을 판단할 때 필요한 정보를 말한다.",
     "신용정보란 무엇을 말하는가?"),
    ("다만, 사채관리회사가 없게 된 때에는 사채권자집회의 결의로 사무승계자를 정한다.",
     "사채관리회사가 없게 된 때에는 어떻게 되는가?"),
])
def test_questions_ask_for_what_the_sentence_answers(sentence, question):
    assert _question(sentence) == question


@pytest.mark.parametrize("sentence", [
    "다음 각 호의 어느 하나에 해당하는 자는 3년 이하의 징역 또는 3천만원 이하의 벌금에 처한다.",  # the act is in the items
    "이 법은 공포한 날부터 시행한다.",  # no condition, no penalty, no definition
    "짧은 경우 그렇다.",
])
def test_sentences_without_a_question_give_none(sentence):
    assert _question(sentence) is None


def test_question_queries_name_their_chunk_and_leave_the_passage_whole():
    c = _section("K9", "상법 483조  사채관리회사의 사무승계자",
                 "사채관리회사의 사임으로 인하여 사채관리회사가 없게 된 경우에는 사채를 발행한 회사는 사무승계자를 정하여야 한다.")
    (q,) = question_queries([c], random.Random(0))
    assert q.id == "question:K9" and q.positives == ["K9"] and q.generator == "question"
    assert q.text.endswith("어떻게 하여야 하는가?") and "사무승계자를 정하여야" not in q.text
    assert "positive_text" not in q.metadata


def test_inverse_cloze_removes_the_sentence(law_chunks):
    qs = {q.id: q for q in ict_queries(law_chunks, random.Random(0), remove_prob=1.0)}
    q = qs["ict:900001:a2-2:p1"]
    assert q.text in law_chunks[2].text
    assert q.text not in q.metadata["positive_text"]
    assert q.metadata["positive_text"].startswith(law_chunks[2].title)


def test_citing_paragraphs_become_queries_for_what_they_cite(law_chunks):
    edges, _ = resolve_refs(law_chunks)
    qs = {q.id: q for q in ref_queries(law_chunks, random.Random(0), edges=edges)}
    q = qs["ref:900001:a4:p1"]
    assert q.positives == ["900001:a2-2:p1"]
    assert "제2조의2" not in q.text and "위반한 경우" in q.text
    assert q.ignore == ["900001:a4:p1"]  # its own paragraph contains the query's text but is not the answer


def test_filters():
    qs = [SynthQuery("a", "설명의무 위반 시 손해배상", ["p"], "title", "1", "L"),
          SynthQuery("b", "설명의무 위반 시 손해배상", ["p"], "title", "1", "L"),
          SynthQuery("c", "설명의무  위반시 손해 배상!", ["p"], "title", "1", "L"),  # same once normalised
          SynthQuery("n1", "금융회사가 설명의무를 위반하여 손해를 입힌 경우 배상 책임이 있는지 알고 싶습니다", ["p"], "llm", "1", "L"),
          SynthQuery("n2", "금융회사가 설명의무를 위반하여 손해를 입힌 경우 배상 책임이 있는지 알고 싶어요", ["p"], "llm", "1", "L"),
          SynthQuery("d", "짧음", ["p"], "title", "1", "L"),
          SynthQuery("e", "금융회사는 이용자를 보호하여야 하며 이용자에게 고의가 있는 경우에는 그러하지 아니하다", ["p"], "llm", "1", "L")]
    passages = {"p": "금융회사는 이용자를 보호하여야 하며 이용자에게 고의가 있는 경우에는 그러하지 아니하다."}
    kept, stats = filter_queries(qs, passages)
    assert [q.id for q in kept] == ["a", "n1"]
    assert stats.dropped == {"exact duplicate": 2, "near duplicate": 1, "length": 1, "copies its passage": 1}
    assert copy_ratio("abc", "xxabcxx") == 1.0
    kept, stats = filter_queries(qs[:1], passages, round_trip=lambda batch: [False] * len(batch))
    assert kept == [] and stats.dropped == {"round trip": 1}


def test_split_by_document_never_by_row():
    docs = [f"L{i}" for i in range(20)]
    dev = split_documents(docs * 3, 0.2, seed=1)
    assert len(dev) == 4 and dev <= set(docs)
    assert split_documents(docs, 0.2, seed=1) == dev  # stable
    assert split_documents(["only"], 0.5, seed=1) == set()


def test_synth_cli_offline_writes_a_beir_dataset(tmp_path):
    ingest([FIX / "law_900001.json", FIX / "admrule_777.json", Path("src/lextune/data/laws/010910.json")],
           tmp_path / "chunks")
    res = CliRunner().invoke(app, ["synth", "--chunks", str(tmp_path / "chunks"), "--out", str(tmp_path / "q"),
                                   "--generator", "title", "--generator", "ict", "--generator", "refs",
                                   "--set", "dev_fraction=0.4"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "q"
    queries = [json.loads(line) for line in (out / "queries.jsonl").read_text().splitlines()]
    assert {q["generator"] for q in queries} == {"title", "ict", "refs"}
    assert all(q["ignore"] == [q["metadata"]["citing"]] for q in queries if q["generator"] == "refs")
    assert not any("ignore" in q for q in queries if q["generator"] != "refs")
    train_docs = {q["source_doc"] for q in queries if q["split"] == "train"}
    dev_docs = {q["source_doc"] for q in queries if q["split"] == "dev"}
    assert train_docs and dev_docs and not train_docs & dev_docs
    qrels = (out / "qrels" / "train.tsv").read_text().splitlines()
    assert qrels[0] == "query-id\tcorpus-id\tscore" and len(qrels) > 10
    meta = json.loads((out / "meta.json").read_text())
    assert meta["type"] == "queries" and meta["summary"]["kept"]
    from lextune.runs import load_beir

    ds = load_beir(out, split="dev")
    assert ds.qrels and set(ds.qrels) <= set(ds.queries)


# -- the LLM backend, against a real server on loopback -------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    script: list[str] = []
    calls: list[dict] = []
    lock = threading.Lock()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            action = self.script.pop(0) if self.script else "ok"
        if action == "429":
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        if action == "500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        if action == "slow":
            time.sleep(1.5)
        if action == "400":
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "bad model"}')
            return
        user = body["messages"][-1]["content"]
        title = user.split("[조문]\n", 1)[1].split("\n", 1)[0]
        if action == "garbage":
            content = "I cannot answer that."
        elif action == "fenced":
            content = f'```json\n[{{"style": "lay", "query": "{title} 상황 질문"}}, {{"style": "expert", "query": "{title} 요건",}},]\n```'
        elif action == "bullets":
            content = f"- {title} 질문 하나\n- {title} 질문 둘\n- {title} 키워드"
        else:
            items = [{"style": s, "query": f"{title} {s} 질의"} for s in ("lay", "expert", "keyword")]
            content = json.dumps(items, ensure_ascii=False)
        payload = {"choices": [{"message": {"role": "assistant", "content": content}}],
                   "usage": {"prompt_tokens": 100, "completion_tokens": 20}}
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the client gave up on a slow answer: expected
        pass


@pytest.fixture
def server():
    _Handler.script = []
    _Handler.calls = []
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _cfg(url: str, **kw) -> LLMConfig:
    base = {"base_url": url, "model": "test-model", "api_key_env": "LEXTUNE_TEST_KEY", "concurrency": 2,
            "timeout_s": 0.5, "backoff_s": 0.01, "max_retries": 4, "price_per_1k_prompt": 0.5,
            "price_per_1k_completion": 1.0}
    return LLMConfig(**(base | kw))


def test_llm_survives_429_500_timeouts_and_malformed_json(server, law_chunks, tmp_path, monkeypatch):
    monkeypatch.setenv("LEXTUNE_TEST_KEY", "sk-test")
    _Handler.script = ["429", "500", "slow", "fenced", "garbage", "bullets"]
    gen = LLMQueryGenerator(_cfg(server), cache_path=tmp_path / "cache.jsonl")
    queries = gen.generate(law_chunks)
    by_chunk: dict[str, list[SynthQuery]] = {}
    for q in queries:
        by_chunk.setdefault(q.positives[0], []).append(q)
    assert set(by_chunk) == {c.id for c in law_chunks}  # every chunk got queries in the end
    assert all(1 <= len(v) <= 3 for v in by_chunk.values())
    s = gen.stats
    assert s.retries >= 3 and s.unparseable >= 1 and s.failed_chunks == 0
    assert s.prompt_tokens == 100 * (s.requests - 4) or s.prompt_tokens > 0
    assert gen.stats.cost(gen.config) == pytest.approx(s.prompt_tokens / 1000 * 0.5 + s.completion_tokens / 1000 * 1.0)
    assert _Handler.calls[0]["auth"] == "Bearer sk-test" and _Handler.calls[0]["path"] == "/v1/chat/completions"
    assert {q.metadata["style"] for q in queries} <= {"lay", "expert", "keyword"}
    gen.close()
    # a rerun costs nothing: every chunk comes from the cache
    before = len(_Handler.calls)
    again = LLMQueryGenerator(_cfg(server), cache_path=tmp_path / "cache.jsonl")
    assert [q.text for q in again.generate(law_chunks)] == [q.text for q in queries]
    assert len(_Handler.calls) == before and again.stats.cached == len(law_chunks)


def test_llm_resumes_after_a_crash_and_reports_hard_failures(server, law_chunks, tmp_path):
    cache = tmp_path / "cache.jsonl"
    gen = LLMQueryGenerator(_cfg(server, api_key_env=None), cache_path=cache)
    gen.generate(law_chunks[:3])
    with open(cache, "a", encoding="utf-8") as f:
        f.write('{"key": "cut-by-a-cra')  # the line a crash left half-written
    calls = len(_Handler.calls)
    gen2 = LLMQueryGenerator(_cfg(server, api_key_env=None), cache_path=cache)
    gen2.generate(law_chunks)
    assert len(_Handler.calls) - calls == len(law_chunks) - 3  # only the missing chunks were asked
    _Handler.script = ["400"] * 50
    gen3 = LLMQueryGenerator(_cfg(server, api_key_env=None))
    from lextune.synth.llm import LLMError

    with pytest.raises(LLMError, match="every request failed"):
        gen3.generate(law_chunks[:2])


def test_parse_json_repairs():
    assert parse_json_queries('{"queries": [{"query": "가"}, "나"]}') == [{"style": None, "query": "가"},
                                                                          {"style": None, "query": "나"}]
    assert parse_json_queries("1. 첫째 질문\n2) 둘째 질문") == [{"style": None, "query": "첫째 질문"},
                                                                 {"style": None, "query": "둘째 질문"}]
    with pytest.raises(ValueError):
        parse_json_queries("")


def test_synth_with_llm_generator_end_to_end(server, tmp_path):
    ingest([LAW], tmp_path / "chunks")
    cfg = SynthConfig(generators=["llm"], llm=_cfg(server, api_key_env=None), dev_fraction=0.0)
    summary = synth(tmp_path / "chunks", tmp_path / "q", cfg)
    assert summary.kept["llm"] > 0 and summary.llm["requests"] >= 7 and summary.llm["cost"] > 0
    rec = json.loads((tmp_path / "q" / "queries.jsonl").read_text().splitlines()[0])
    assert rec["generator"] == "llm" and rec["version"] == "ko-v1" and rec["metadata"]["model"] == "test-model"
