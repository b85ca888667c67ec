"""Bi-encoder training: the temperature really is 1/scale, and a few real steps produce folders that load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lextune.train import BiEncoderTrainConfig
from lextune.train.biencoder import load_trainable, make_loss

PASSAGES = {
    "p1": "금융회사는 접근매체의 위조로 발생한 사고로 이용자에게 손해가 발생한 경우 그 손해를 배상할 책임을 진다.",
    "p2": "예금보험공사는 부보금융회사가 파산한 경우 예금자에게 보험금을 지급한다.",
    "p3": "채권추심자는 야간에 채무자를 방문하여서는 아니 된다.",
    "p4": "금융상품판매업자는 금융상품의 중요한 사항을 설명하여야 한다.",
}
QUERIES = [("보이스피싱 피해 배상", "p1", "p2"), ("은행 파산 시 예금 보호", "p2", "p3"),
           ("밤에 빚 독촉 방문", "p3", "p4"), ("금융상품 설명의무", "p4", "p1")]


@pytest.fixture
def data(tmp_path, bundled_dir):
    corpus = tmp_path / "idx"
    corpus.mkdir()
    with open(corpus / "docs.jsonl", "w", encoding="utf-8") as f:
        for k, v in PASSAGES.items():
            f.write(json.dumps({"id": k, "contents": v}, ensure_ascii=False) + "\n")
    train = tmp_path / "train.jsonl"
    with open(train, "w", encoding="utf-8") as f:
        for i, (q, p, n) in enumerate(QUERIES * 2):
            f.write(json.dumps({"query_id": f"q{i}", "query": q, "pos": [p], "neg": [n]}, ensure_ascii=False) + "\n")
    return tmp_path, corpus, train


def test_infonce_scale_is_one_over_temperature(data):
    import torch

    tmp, corpus, train = data
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp / "o"), temperature=0.02,
                               device="cpu")
    model, _ = load_trainable(cfg)
    loss = make_loss(model, cfg)
    assert loss.scale == pytest.approx(50.0)
    model.eval()
    anchors = ["query: " + q for q, _, _ in QUERIES]
    positives = ["passage: " + PASSAGES[p] for _, p, _ in QUERIES]
    feats = [model.tokenize(anchors), model.tokenize(positives)]
    with torch.no_grad():
        got = float(loss(feats, labels=None))
        a = model.encode(anchors, convert_to_tensor=True, normalize_embeddings=True)
        p = model.encode(positives, convert_to_tensor=True, normalize_embeddings=True)
        expected = float(torch.nn.functional.cross_entropy((a @ p.T) / 0.02, torch.arange(len(QUERIES))))
    assert got == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_a_few_real_steps_give_a_loadable_model(data, lora, encoder):
    from sentence_transformers import SentenceTransformer

    from lextune.models.biencoder import BiEncoder
    from lextune.train import train_biencoder

    tmp, corpus, train = data
    out = tmp / ("lora" if lora else "full")
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(out), max_steps=2,
                               batch_size=4, max_seq_length=48, learning_rate=5e-4 if lora else 1e-4,
                               lora={"r": 4, "alpha": 8} if lora else None, device="cpu", logging_steps=1)
    summary = train_biencoder(cfg)
    assert summary["steps"] == 2 and summary["examples"] == 8 and np.isfinite(summary["train_loss"])
    assert (out / "train_config.yaml").is_file() and (out / "README.md").is_file()
    assert json.loads((out / "meta.json").read_text())["training"]["steps"] == 2
    assert not any(p.name.startswith(".") for p in tmp.iterdir() if "checkpoints" in p.name)
    tuned = BiEncoder(out, device="cpu")
    v = tuned.encode_passages(list(PASSAGES.values()))
    base = encoder.encode_passages(list(PASSAGES.values()))
    assert v.shape == base.shape and not np.allclose(v, base, atol=1e-4)
    if lora:
        assert (out / "adapter_config.json").is_file()
        assert tuned.get_training_config()["r"] == 4
    else:
        st = SentenceTransformer(str(out), device="cpu")  # plain sentence-transformers loads it too
        assert np.allclose(st.encode_document(list(PASSAGES.values())), v, atol=1e-5)
