"""The GPU paths, run on purpose on a CUDA machine: `.venv/bin/pytest -m gpu` (QLoRA also needs
`pip install "lextune[gpu]"`). Deselected by default; skipped where no CUDA device is visible."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_picks_the_gpu_recipe_with_bf16(grouped_data):
    from lextune.train import BiEncoderTrainConfig, RerankerTrainConfig

    corpus, train = grouped_data
    paths = {"train_file": str(train), "corpus": str(corpus), "output_dir": "-"}
    bi, rr = BiEncoderTrainConfig(**paths), RerankerTrainConfig(**paths)
    assert bi.recipe == rr.recipe == "gpu" and bi.train_layers is None
    assert bi.bf16 == rr.bf16 == torch.cuda.is_bf16_supported()


def test_cuda_training_with_the_gpu_recipe(tmp_path, grouped_data, bundled_dir):
    from lextune.models.biencoder import BiEncoder
    from lextune.train import BiEncoderTrainConfig, train_biencoder

    corpus, train = grouped_data
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp_path / "m"),
                               batch_size=4, mini_batch_size=2, max_seq_length=64, max_steps=4, progress=False)
    summary = train_biencoder(cfg)
    print(f"cuda bi-encoder: {summary['samples_per_second']} samples/s, bf16={cfg.bf16}")
    assert summary["steps"] == 4 and np.isfinite(summary["train_loss"]) and summary["samples_per_second"] > 0
    tuned = BiEncoder(tmp_path / "m", device="cuda")
    v = tuned.encode_passages(["금융회사는 설명하여야 한다."])
    assert v.shape == (1, 384) and np.isfinite(v).all()


def test_qlora_reranker_trains_in_4_bits_and_reloads(tmp_path, grouped_data, bundled_dir):
    pytest.importorskip("bitsandbytes")
    from lextune.index.rerank import RerankConfig, Reranker
    from lextune.train import RerankerTrainConfig, merge_adapter, train_reranker

    corpus, train = grouped_data
    cfg = RerankerTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp_path / "rr"),
                              qlora=True, lora={"r": 8, "alpha": 16}, max_steps=4, batch_size=2, max_length=64,
                              progress=False)
    summary = train_reranker(cfg)
    print(f"cuda QLoRA reranker: {summary['samples_per_second']} samples/s")
    assert summary["steps"] == 4 and np.isfinite(summary["train_loss"])
    config = json.loads((tmp_path / "rr" / "adapter_config.json").read_text())
    assert config["task_type"] == "SEQ_CLS"
    pairs = [("예금 설명", "제0조 금융회사는 예금에 관한 사항을 설명하여야 한다."), ("예금 설명", "제4조 카드")]
    scores = Reranker(RerankConfig(model=str(tmp_path / "rr")), device="cuda").score(pairs)
    assert len(scores) == 2 and np.isfinite(scores).all()
    assert (merge_adapter(tmp_path / "rr", tmp_path / "merged") / "config.json").is_file()
