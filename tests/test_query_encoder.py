"""Query-encoder distillation: layer choice and inputs (logic), one real run on the bundled model through the CLI,
and the student querying the teacher's index (library and service)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lextune.errors import ConfigError, InputFormatError
from lextune.train.query_encoder import corpus_spans, keep_layers, read_query_texts

QUESTIONS = ["전세보증금을 돌려받지 못하면 어떻게 하나요?", "보이스피싱 피해는 누가 배상하나요?",
             "은행이 파산하면 예금은 보호되나요?", "밤에 빚 독촉을 하러 와도 되나요?",
             "금융상품 설명의무를 어기면?", "임대차 계약 갱신을 거절할 수 있는 경우는?",
             "개인정보를 동의 없이 제공하면 처벌되나요?", "근로계약서를 쓰지 않으면 과태료가 있나요?"]


def test_keep_layers_spreads_from_first_to_last_or_takes_the_bottom():
    assert keep_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert keep_layers(12, 4) == [0, 4, 7, 11]
    assert keep_layers(12, 1) == [11]
    assert keep_layers(12, 12) == list(range(12))
    assert keep_layers(12, 3, "bottom") == [0, 1, 2]
    with pytest.raises(ConfigError, match="only 12"):
        keep_layers(12, 13)


def test_corpus_spans_are_distinct_bounded_and_seeded():
    texts = ["첫째 문장이다. 둘째 문장도 여기에 있다.\n셋째 줄의 문장은 조금 더 길게 쓴다. 짧다.",
             "첫째 문장이다. 다른 글의 문장도 하나 있다."]
    got = corpus_spans(texts, 10, min_chars=8, max_chars=15, seed=1)
    assert len(got) == len(set(got)) == 4  # "짧다." is too short; the repeated first sentence counts once
    assert all(8 <= len(s) <= 15 for s in got)
    assert "셋째 줄의 문장은 조금 더" in got  # cut at max_chars
    assert corpus_spans(texts, 2, min_chars=8, max_chars=15, seed=1) == \
        corpus_spans(texts, 2, min_chars=8, max_chars=15, seed=1)
    long_text = " ".join(f"이것은 {i}번째 문장이다." for i in range(10))
    spans = corpus_spans([long_text], 10, min_chars=1, max_chars=500, max_sentences=3, seed=3)
    assert all(s in long_text for s in spans)  # consecutive sentences, in order
    assert {s.count(".") for s in spans} > {1}  # and some spans are longer than one sentence


def test_length_grouped_batches_cover_every_text_once_with_little_padding():
    from datasets import Dataset

    from lextune.train.query_encoder import length_grouped_batches

    rng = np.random.default_rng(0)
    texts = ["가" * int(n) for n in rng.integers(5, 300, size=1000)]
    data = Dataset.from_dict({"text": texts})
    sampler = length_grouped_batches(data, batch_size=16, drop_last=False, seed=5, megabatch=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    def padded(bs):
        return sum(len(b) * max(len(texts[i]) for i in b) for b in bs) / sum(len(t) for t in texts)
    random_batches = [list(range(s, min(s + 16, 1000))) for s in range(0, 1000, 16)]
    assert padded(batches) < 1.1 < 1.5 < padded(random_batches)
    assert list(length_grouped_batches(data, 16, False, seed=5, megabatch=10)) == batches  # same seed, same order
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch


def test_query_files_name_file_and_line_of_a_bad_record(tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text('{"_id": "a", "text": " 질문 하나 "}\n\n{"_id": "b", "text": "질문 둘"}\n', encoding="utf-8")
    assert read_query_texts([str(good)]) == ["질문 하나", "질문 둘"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "좋은 줄"}\n{"_id": "x"}\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"bad.jsonl:2 \(field 'text'\): missing field"):
        read_query_texts([str(bad)])
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": "  "}\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"empty.jsonl:1 \(field 'text'\): empty query text"):
        read_query_texts([str(empty)])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(InputFormatError, match=r"broken.jsonl:2: not valid JSON"):
        read_query_texts([str(broken)])
    with pytest.raises(InputFormatError, match="no such file"):
        read_query_texts([str(tmp_path / "missing.jsonl")])


@pytest.fixture(scope="module")
def student(module_tmp, bundled_dir, law_texts):
    """A 2-layer student of the bundled model, distilled for a few steps through `lextune train query-encoder`."""
    from typer.testing import CliRunner

    from lextune.cli.main import app

    tmp = module_tmp
    queries = tmp / "queries.jsonl"
    queries.write_text("".join(json.dumps({"_id": f"q{i}", "text": q}, ensure_ascii=False) + "\n"
                               for i, q in enumerate(QUESTIONS)), encoding="utf-8")
    corpus = tmp / "idx"
    corpus.mkdir()
    with open(corpus / "docs.jsonl", "w", encoding="utf-8") as f:
        for i, text in enumerate(law_texts[:60]):
            f.write(json.dumps({"id": f"d{i}", "contents": text}, ensure_ascii=False) + "\n")
    out = tmp / "student"
    result = CliRunner().invoke(app, [
        "train", "query-encoder", "--queries", str(queries), "--corpus", str(corpus), "--layers", "2",
        "-o", str(out), "--set", "corpus_texts=120", "--set", "max_steps=12", "--set", "batch_size=8",
        "--set", "learning_rate=3e-4", "--set", "validation_fraction=0.25", "--set", "teacher_backend=torch",
        "--set", "device=cpu", "--set", "progress=false", "--set", "warmup_ratio=0", "--set", "logging_steps=3"])
    assert result.exit_code == 0, result.output
    assert "distilled 2 of 12 layers [0, 11]" in result.output
    return out


def test_distilled_student_is_a_plain_smaller_model_that_moved_towards_the_teacher(student, encoder, lextune_home):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(student), device="cpu")
    assert model[0].auto_model.config.num_hidden_layers == 2
    assert model.prompts.get("query") == encoder.template.query  # the teacher's templates travel with it
    meta = json.loads((student / "meta.json").read_text(encoding="utf-8"))
    info = meta["query_encoder"]
    assert info["teacher_fingerprint"] == encoder.fingerprint() and info["layers"] == [0, 11]
    training = meta["training"]
    before, after = training["validation"]["before"], training["validation"]["after"]
    assert training["texts"]["validation"] >= 10
    assert after["cosine_mean"] > before["cosine_mean"] and after["top10_overlap"] > before["top10_overlap"], \
        training["validation"]
    losses = [h["loss"] for h in training["loss_history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert (student / "train_config.yaml").is_file() and "query-side student" in (student / "README.md").read_text()
    assert list((lextune_home / "cache" / "query_targets").glob("*.npy"))  # a resumed run does not re-encode
    assert not (student.parent / f".{student.name}.checkpoints").exists()


def test_teacher_with_query_model_encodes_queries_by_the_student_and_passages_by_itself(student, encoder):
    from lextune.models.biencoder import BiEncoder

    paired = BiEncoder("bundled:multilingual-e5-small", device="cpu", query_model=str(student))
    alone = BiEncoder(str(student), device="cpu")
    qs = QUESTIONS[:3]
    np.testing.assert_allclose(paired.encode_queries(qs), alone.encode_queries(qs), atol=1e-6)
    assert not np.allclose(paired.encode_queries(qs), encoder.encode_queries(qs), atol=1e-3)
    passages = ["임차인은 보증금을 반환받을 때까지 임차주택을 점유할 수 있다."]
    np.testing.assert_allclose(paired.encode_passages(passages), encoder.encode_passages(passages), atol=1e-6)
    vecs, counts = paired.encode_with_token_counts(qs, "query")
    assert vecs.shape == (3, 384) and len(counts) == 3
    assert paired.fingerprint() == encoder.fingerprint()  # the teacher's indexes and caches still match
    assert paired.describe()["query_model"]["layers"] == [0, 11]


def test_a_query_model_of_another_teacher_or_no_student_is_refused(student, tmp_path, bundled_dir):
    from lextune.models.biencoder import BiEncoder

    other = tmp_path / "other"
    shutil.copytree(student, other)
    meta = json.loads((other / "meta.json").read_text(encoding="utf-8"))
    meta["query_encoder"]["teacher_fingerprint"] = "0" * 64
    (other / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ConfigError, match="was distilled from"):
        BiEncoder("bundled:multilingual-e5-small", device="cpu", query_model=str(other))
    with pytest.raises(ConfigError, match="not a distilled query encoder"):
        BiEncoder("bundled:multilingual-e5-small", device="cpu", query_model=str(bundled_dir))


def test_service_refuses_a_query_model_setting_its_handed_encoder_lacks(student, encoder):
    from lextune.serve import ServeConfig, create_app

    with pytest.raises(ConfigError, match="query_model is set"):
        create_app(ServeConfig(query_model=str(student), api_key_env=None), encoder=encoder)


def test_service_searches_the_teachers_index_with_the_query_model(student, encoder, tmp_path):
    from fastapi.testclient import TestClient

    from lextune.index import IndexBuildConfig, build_index
    from lextune.index.dense import DenseConfig
    from lextune.serve import ServeConfig, create_app

    docs = [{"id": f"d{i}", "contents": t} for i, t in enumerate(
        ["임차인은 보증금을 반환받을 때까지 임차주택을 점유할 수 있다.", "예금보험공사는 보험금을 지급한다.",
         "채권추심자는 야간에 채무자를 방문하여서는 아니 된다."])]
    index = build_index(docs, tmp_path / "idx", IndexBuildConfig(dense=DenseConfig(model="bundled:multilingual-e5-small")),
                        encoder=encoder)
    config = ServeConfig(model="bundled:multilingual-e5-small", query_model=str(student), index=str(index.folder),
                         backend="torch", device="cpu", api_key_env=None)
    with TestClient(create_app(config)) as client:
        health = client.get("/health").json()
        assert health["query_model"]["layers"] == [0, 11]
        hits = client.post("/v1/search", json={"query": "밤에 빚 독촉", "k": 3}).json()["results"]
        assert len(hits) == 3 and all("dense" in h["scores"] for h in hits)
        q = client.post("/v1/embeddings", json={"input": "밤에 빚 독촉", "input_type": "query"}).json()
    state = client.app.state.lextune
    expected = state.encoder._query.encode_queries(["밤에 빚 독촉"])
    np.testing.assert_allclose(q["data"][0]["embedding"], expected[0], atol=1e-5)
    dense = {h["id"]: h["scores"]["dense"] for h in hits}
    passage_vecs = encoder.encode_passages([d["contents"] for d in docs])
    np.testing.assert_allclose([dense[d["id"]] for d in docs], passage_vecs @ expected[0], atol=1e-4)
    # `lextune eval` pipelines take the same student (a YAML `query_model:`), so the trade can be measured there
    from lextune.index import PipelineConfig, build_pipeline

    run = build_pipeline(index, PipelineConfig(retrievers=["dense"], query_model=str(student))).search({"q": "밤에 빚 독촉"}, 3)
    np.testing.assert_allclose([run["q"][d["id"]] for d in docs], passage_vecs @ expected[0], atol=1e-4)


def test_ranking_loss_is_the_kl_of_the_score_softmaxes_plus_the_vector_distance():
    import torch

    from lextune.train.query_encoder import ranking_distill_loss

    class Given(torch.nn.Module):  # stands for the student: returns the embedding it is handed
        def forward(self, features):
            return {"sentence_embedding": features["x"]}

    passages = np.eye(3, dtype=np.float32)
    teacher = torch.tensor([[0.8, 0.6, 0.0]])
    student = torch.nn.functional.normalize(torch.tensor([[0.6, 0.8, 0.1]]), dim=-1)
    t = 0.1
    kl_only = ranking_distill_loss(Given(), passages, temperature=t, vector_weight=0.0)
    both = ranking_distill_loss(Given(), passages, temperature=t, vector_weight=2.0)
    assert float(kl_only([{"x": teacher}], teacher)) == pytest.approx(0.0, abs=1e-7)
    assert float(both([{"x": teacher}], teacher)) == pytest.approx(0.0, abs=1e-6)

    def log_softmax(v):
        z = v / t
        return z - np.log(np.exp(z - z.max()).sum()) - z.max()
    lt, ls = log_softmax(teacher.numpy()[0]), log_softmax(student.numpy()[0])
    kl = float((np.exp(lt) * (lt - ls)).sum())  # KL(teacher || student), by hand
    cos = float(1 - (teacher.numpy()[0] @ student.numpy()[0]) / np.linalg.norm(teacher.numpy()[0]))
    assert float(kl_only([{"x": student}], teacher)) == pytest.approx(kl, rel=1e-5)
    assert float(both([{"x": student}], teacher)) == pytest.approx(kl + 2.0 * cos, rel=1e-5)
