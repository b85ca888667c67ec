"""Reranker training: list construction, losses, LoRA with its head saved and reloaded identically,
QLoRA's clear error on CPU, and merging an adapter into a plain folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lextune.errors import ConfigError
from lextune.schema import TrainingExample
from lextune.train import RerankerTrainConfig, merge_adapter, train_reranker
from lextune.train.reranker import epoch_rows

TEXTS = {f"d{i}": f"제{i}조 금융회사는 {w}에 관한 사항을 이용자에게 설명하여야 한다." for i, w in
         enumerate(["예금", "대출", "보험", "투자", "카드", "추심", "전자금융", "신용정보"])}
RECORDS = [{"query": f"{w} 설명의무", "pos": [f"d{i}"], "neg": [f"d{(i + 1) % 8}", f"d{(i + 2) % 8}", f"d{(i + 3) % 8}"]}
           for i, w in enumerate(["예금", "대출", "보험", "투자", "카드", "추심", "전자금융", "신용정보"])]


@pytest.fixture
def data(tmp_path):
    corpus = tmp_path / "idx"
    corpus.mkdir()
    with open(corpus / "docs.jsonl", "w", encoding="utf-8") as f:
        for k, v in TEXTS.items():
            f.write(json.dumps({"id": k, "contents": v}, ensure_ascii=False) + "\n")
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in RECORDS) + "\n", encoding="utf-8")
    return tmp_path, corpus, train


def test_negatives_are_resampled_every_epoch_and_mixed_with_random():
    cfg = RerankerTrainConfig(train_file="x", corpus="x", output_dir="x", n_negatives=2, random_ratio=0.5, epochs=2)
    records = [TrainingExample(**r) for r in RECORDS]  # train.jsonl's typed records
    e0, e1 = epoch_rows(records, TEXTS, cfg, 0), epoch_rows(records, TEXTS, cfg, 1)
    assert all(r["labels"] == [1, 0, 0] and len(r["docs"]) == 3 for r in e0)
    assert [r["docs"] for r in e0] != [r["docs"] for r in e1]
    for r, rec in zip(e0, RECORDS, strict=True):
        assert r["docs"][0] == TEXTS[rec["pos"][0]]
        assert TEXTS[rec["pos"][0]] not in r["docs"][1:]


def test_lora_reranker_reloads_with_identical_scores_and_merges(data, bundled_dir):
    from sentence_transformers import CrossEncoder

    from lextune.index.rerank import RerankConfig, Reranker

    tmp, corpus, train = data
    cfg = RerankerTrainConfig(base_model=str(bundled_dir), train_file=str(train), corpus=str(corpus),
                              output_dir=str(tmp / "rr"), lora={"r": 4, "alpha": 8}, max_steps=2, batch_size=4,
                              max_length=64, learning_rate=1e-3, device="cpu", logging_steps=1)
    summary = train_reranker(cfg, keep_model=True)
    assert summary["steps"] == 2 and np.isfinite(summary["train_loss"])
    pairs = [(r["query"], TEXTS[d]) for r in RECORDS[:3] for d in (r["pos"] + r["neg"])]
    trained = summary["model"]
    trained.model.eval()
    expected = trained.predict(pairs, convert_to_numpy=True)
    assert (tmp / "rr" / "adapter_config.json").is_file()
    reloaded = Reranker(RerankConfig(model=str(tmp / "rr")), device="cpu").score(pairs)
    assert np.allclose(reloaded, expected, atol=1e-5)  # the trained classification head came back too
    merged = merge_adapter(tmp / "rr", tmp / "merged")
    plain = CrossEncoder(str(merged), num_labels=1, device="cpu").predict(pairs, convert_to_numpy=True)
    assert np.allclose(plain, expected, atol=1e-4)


@pytest.mark.parametrize("loss", ["pairwise", "pointwise"])
def test_other_losses_train(data, bundled_dir, loss):
    tmp, corpus, train = data
    cfg = RerankerTrainConfig(base_model=str(bundled_dir), train_file=str(train), corpus=str(corpus),
                              output_dir=str(tmp / loss), loss=loss, max_steps=1, batch_size=4, max_length=64,
                              device="cpu")
    summary = train_reranker(cfg)
    assert summary["steps"] == 1 and np.isfinite(summary["train_loss"]) and summary["peak_rss_gb"] > 0.1
    assert (tmp / loss / "config.json").is_file() and (tmp / loss / "train_config.yaml").is_file()


def test_qlora_on_cpu_is_a_clear_error(data, bundled_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    tmp, corpus, train = data
    cfg = RerankerTrainConfig(base_model=str(bundled_dir), train_file=str(train), corpus=str(corpus),
                              output_dir=str(tmp / "q"), qlora=True, lora={})
    with pytest.raises(ConfigError, match="QLoRA needs a CUDA GPU"):
        train_reranker(cfg)


def test_a_killed_reranker_run_resumes_from_its_last_checkpoint_with_the_same_scores(data, bundled_dir,
                                                                                     crash_at_step):
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import CrossEncoderTrainer

    tmp, corpus, train = data

    def cfg(name: str) -> RerankerTrainConfig:
        return RerankerTrainConfig(base_model=str(bundled_dir), train_file=str(train), corpus=str(corpus),
                                   output_dir=str(tmp / name / "rr"), max_steps=4, save_steps=2, batch_size=2,
                                   max_length=48, train_layers=1, learning_rate=1e-3, device="cpu", progress=False)

    whole = train_reranker(cfg("whole"))
    crash = crash_at_step(CrossEncoderTrainer, 3)
    with pytest.raises(RuntimeError, match="killed"):
        train_reranker(cfg("killed"))
    assert [p.name for p in (tmp / "killed" / ".rr.checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    resumed = train_reranker(cfg("killed"))
    assert resumed["resumed"] and not whole["resumed"] and resumed["steps"] == 4 and crash["calls"] == 5
    pairs = [(r["query"], TEXTS[d]) for r in RECORDS[:3] for d in (r["pos"] + r["neg"])]
    a = CrossEncoder(str(tmp / "whole" / "rr"), device="cpu").predict(pairs, convert_to_numpy=True)
    b = CrossEncoder(str(tmp / "killed" / "rr"), device="cpu").predict(pairs, convert_to_numpy=True)
    base = CrossEncoder(str(bundled_dir), num_labels=1, device="cpu")
    assert np.allclose(a, b, atol=1e-5) and not (tmp / "killed" / ".rr.checkpoints").exists()
    assert not np.allclose(a, base.predict(pairs, convert_to_numpy=True), atol=1e-3)  # it did train
