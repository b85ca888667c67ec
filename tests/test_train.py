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
    lines: list[str] = []
    summary = train_biencoder(cfg, progress=lines.append)
    assert summary["steps"] == 2 and summary["examples"] == 8 and np.isfinite(summary["train_loss"])
    assert lines and lines[-1].startswith("training steps: 2/2 (") and ", loss " in lines[-1]  # where a log looks
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


def _write_scored(tmp, rows):
    path = tmp / "scored.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def test_distillation_labels_and_multiple_positives(data):
    from lextune.errors import ConfigError
    from lextune.train.biencoder import build_dataset

    tmp, corpus, _ = data
    train = _write_scored(tmp, [{"query_id": "a", "query": "배상", "pos": ["p1", "p2"], "neg": ["p3", "p4"],
                                 "pos_scores": [0.9, 0.8], "neg_scores": [0.5, 0.4]}])
    base = {"train_file": str(train), "corpus": str(corpus), "output_dir": str(tmp / "o")}
    ds, _ = build_dataset(BiEncoderTrainConfig(**base, loss="margin_mse", n_negatives=2))
    pos = 0.9 if ds["positive"][0] == PASSAGES["p1"] else 0.8  # one positive drawn at random
    assert ds["label"][0] == pytest.approx([pos - 0.5, pos - 0.4])  # margins pos - neg_i
    ds, _ = build_dataset(BiEncoderTrainConfig(**base, loss="kl", n_negatives=2, max_positives=2))
    assert ds["label"] == [pytest.approx([0.9, 0.5, 0.4]), pytest.approx([0.8, 0.5, 0.4])]
    assert ds["positive"] == [PASSAGES["p1"], PASSAGES["p2"]] and ds["anchor"] == ["배상", "배상"]
    no_scores = _write_scored(tmp, [{"query_id": "b", "query": "배상", "pos": ["p1"], "neg": ["p3"]}])
    with pytest.raises(ConfigError, match="pos_scores"):
        build_dataset(BiEncoderTrainConfig(**{**base, "train_file": str(no_scores)}, loss="margin_mse"))


def test_a_new_loss_is_one_registry_entry(data):
    """A loss added through its registry entry alone is accepted by the config and trains; an unknown name is
    refused with the registered ones listed."""
    from pydantic import ValidationError

    from lextune.train import train_biencoder
    from lextune.train.losses import LOSSES, Loss, register

    tmp, corpus, train = data
    built = []

    def triplet(model, cfg):
        from sentence_transformers.sentence_transformer.losses import TripletLoss

        built.append(cfg.loss)
        return TripletLoss(model)

    register(Loss("toy_triplet", "biencoder", "triplets", triplet))
    try:
        cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp / "toy"),
                                   loss="toy_triplet", max_steps=1, batch_size=4, max_seq_length=32, device="cpu")
        assert np.isfinite(train_biencoder(cfg)["train_loss"]) and built == ["toy_triplet"]
    finally:
        del LOSSES["biencoder"]["toy_triplet"]
    with pytest.raises(ValidationError, match="unknown loss 'toy_triplet'; registered: cached_infonce, infonce, kl"):
        BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir="x", loss="toy_triplet")


@pytest.mark.parametrize("loss", ["margin_mse", "kl"])
def test_distillation_losses_train(data, loss):
    from lextune.train import train_biencoder

    tmp, corpus, _ = data
    train = _write_scored(tmp, [{"query_id": f"q{i}", "query": q, "pos": [p], "neg": [n], "pos_scores": [0.9],
                                 "neg_scores": [0.3]} for i, (q, p, n) in enumerate(QUERIES)])
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp / loss), loss=loss,
                               max_steps=1, batch_size=4, max_seq_length=32, device="cpu")
    assert np.isfinite(train_biencoder(cfg)["train_loss"])


def test_cpu_recipe_freezes_embeddings_and_lower_layers(data):
    tmp, corpus, train = data
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp / "o"), train_layers=2,
                               device="cpu")
    model, _ = load_trainable(cfg)
    hf = model[0].auto_model
    assert not any(p.requires_grad for p in hf.embeddings.parameters())
    layers = hf.encoder.layer
    assert not any(p.requires_grad for layer in layers[:-2] for p in layer.parameters())
    assert all(p.requires_grad for layer in layers[-2:] for p in layer.parameters())
    assert model.max_seq_length == cfg.max_seq_length and model.lextune_base_max_seq_length == 512
    # the frozen part is a fixed feature extractor: no dropout there, even after the trainer's model.train()
    model.train()
    assert not hf.embeddings.training and not any(m.training for layer in layers[:-2] for m in layer.modules())
    assert all(m.training for layer in layers[-2:] for m in layer.modules())


def test_training_with_frozen_bottom_reuses_its_outputs_and_matches_the_uncached_step(data):
    """One step with the prefix cache gives the weights of one step without it (the same loss and update)."""
    import torch

    from lextune.models.prefix_cache import prefix_cache
    from lextune.train import train_biencoder

    tmp, corpus, train = data
    common = dict(train_file=str(train), corpus=str(corpus), train_layers=2, max_steps=2, batch_size=4,
                  max_seq_length=32, device="cpu", seed=3, save_steps=1000)
    plain = train_biencoder(BiEncoderTrainConfig(output_dir=str(tmp / "plain"), layer_cache_gb=0, **common))
    with prefix_cache(trained_top=2) as cache:  # as `lextune run` does; alone, training opens its own
        cached = train_biencoder(BiEncoderTrainConfig(output_dir=str(tmp / "cached"), **common))
        assert cache.hits > 0
    assert cached["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    from safetensors.torch import load_file

    a, b = load_file(str(tmp / "plain" / "model.safetensors")), load_file(str(tmp / "cached" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    assert torch.equal(a["embeddings.word_embeddings.weight"], b["embeddings.word_embeddings.weight"])


def test_validation_during_training_with_early_stopping(tmp_path, data):
    from lextune.models.biencoder import BiEncoder
    from lextune.train import train_biencoder

    tmp, corpus, train = data
    val = tmp / "val"
    (val / "qrels").mkdir(parents=True)
    (val / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}, ensure_ascii=False) + "\n"
                                              for k, v in PASSAGES.items()), encoding="utf-8")
    (val / "queries.jsonl").write_text("".join(json.dumps({"_id": f"v{i}", "text": q}, ensure_ascii=False) + "\n"
                                               for i, (q, _, _) in enumerate(QUERIES)), encoding="utf-8")
    (val / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"v{i}\t{p}\t1\n" for i, (_, p, _) in enumerate(QUERIES)), encoding="utf-8")
    out = tmp / "es"
    cfg = BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(out), max_steps=6, batch_size=2,
                               max_seq_length=32, learning_rate=1e-4, device="cpu",
                               eval={"data": str(val), "steps": 1, "patience": 1, "corpus_size": 10})
    s = train_biencoder(cfg)
    v = s["validation"]
    assert v["before_ndcg@10"] is not None and len(v["history"]) >= 1 and v["best_step"] is not None
    # the saved model is the best checkpoint: its validation score is the best one seen
    assert v["after_ndcg@10"] == pytest.approx(max(h["ndcg@10"] for h in v["history"]), abs=1e-6)
    assert "Validation" in (out / "README.md").read_text() and BiEncoder(out, device="cpu").get_max_seq_length() == 512


def test_two_cpu_processes_with_gloo(tmp_path, data, bundled_dir):
    """torchrun with 2 CPU processes (gloo) trains a tiny model with negatives gathered across processes."""
    import socket
    import subprocess
    import sys

    from transformers import AutoTokenizer, BertConfig, BertModel

    tmp, corpus, train = data
    tiny = tmp_path / "tiny"
    tok = AutoTokenizer.from_pretrained(bundled_dir)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(tiny)
    tok.save_pretrained(tiny)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "lextune.cli.main", "train", "biencoder", "--train", str(train), "--corpus", str(corpus),
           "--out", str(out), "--model", str(tiny), "--set", "max_steps=2", "--set", "batch_size=2",
           "--set", "gather_across_devices=true", "--set", "device=cpu", "--set", "max_seq_length=32",
           "--set", "freeze_embeddings=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["training"]["world_size"] == 2 and meta["training"]["steps"] == 2
    assert meta["config"]["gather_across_devices"] is True


def test_resume_skips_a_checkpoint_left_half_written(tmp_path):
    from lextune.train.biencoder import resume_checkpoint

    assert resume_checkpoint(tmp_path) is None
    for step, whole in ((100, True), (1000, True), (1200, False)):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"")
        if whole:  # the trainer writes its state last
            (ckpt / "trainer_state.json").write_text("{}")
    assert resume_checkpoint(tmp_path) == str(tmp_path / "checkpoint-1000")  # by step, not by name


def test_a_killed_run_resumes_from_its_last_checkpoint_with_the_same_result(data, crash_at_step):
    from safetensors.torch import load_file
    from sentence_transformers import SentenceTransformerTrainer

    from lextune.train import train_biencoder

    tmp, corpus, train = data

    def cfg(name: str) -> BiEncoderTrainConfig:
        return BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp / name / "model"),
                                    max_steps=4, save_steps=2, batch_size=4, max_seq_length=32, train_layers=1,
                                    learning_rate=1e-4, device="cpu", progress=False)

    whole = train_biencoder(cfg("whole"))
    crash = crash_at_step(SentenceTransformerTrainer, 3)
    with pytest.raises(RuntimeError, match="killed"):
        train_biencoder(cfg("killed"))
    ckpts = tmp / "killed" / ".model.checkpoints"
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (tmp / "killed" / "model").exists()  # nothing that looks finished
    crash["on"] = False
    resumed = train_biencoder(cfg("killed"))
    assert resumed["resumed"] and not whole["resumed"] and resumed["steps"] == whole["steps"] == 4
    assert crash["calls"] == 3 + 2  # the resumed run did only steps 3 and 4
    a = load_file(str(tmp / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp / "killed" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert not ckpts.exists()


def test_checkpoints_of_another_config_are_not_resumed(tmp_path, data):
    from lextune.train.biencoder import resume_point

    _, corpus, train = data
    ckpts = tmp_path / ".model.checkpoints"

    def checkpoint(step: int) -> None:
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
        (ckpts / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")

    def cfg(**kw) -> BiEncoderTrainConfig:
        return BiEncoderTrainConfig(train_file=str(train), corpus=str(corpus), output_dir=str(tmp_path / "model"), **kw)

    checkpoint(5)  # left by a run that did not stamp its config: unknown, so not trusted
    assert resume_point(ckpts, cfg(), [str(train)]) is None and not list(ckpts.glob("checkpoint-*"))
    checkpoint(5)
    assert resume_point(ckpts, cfg(progress=False), [str(train)]) == str(ckpts / "checkpoint-5")  # display only
    assert resume_point(ckpts, cfg(learning_rate=1e-3), [str(train)]) is None  # another config: removed
    checkpoint(5)
    with open(train, "a", encoding="utf-8") as f:  # the training file changed
        f.write(json.dumps({"query_id": "x", "query": "새 질의", "pos": ["p1"], "neg": ["p2"]}) + "\n")
    assert resume_point(ckpts, cfg(learning_rate=1e-3), [str(train)]) is None
    checkpoint(5)
    assert resume_point(ckpts, cfg(learning_rate=1e-3, resume=False), [str(train)]) is None
    assert not list(ckpts.glob("checkpoint-*"))


def test_the_recipe_fills_only_what_the_config_leaves_out():
    from lextune.pipeline import RunConfig
    from lextune.pipeline.run import _layer_cache
    from lextune.train import RerankerTrainConfig
    from lextune.train.recipes import BIENCODER_RECIPES, RERANKER_RECIPES

    paths = {"train_file": "t.jsonl", "corpus": "idx", "output_dir": "out"}
    cpu = BiEncoderTrainConfig(**paths, device="cpu")
    assert cpu.recipe == "cpu" and (cpu.train_layers, cpu.batch_size, cpu.learning_rate) == (4, 32, 5e-5)
    gpu = BiEncoderTrainConfig(**paths, device="cuda:1")
    assert gpu.recipe == "gpu" and gpu.train_layers is None and gpu.n_negatives == 7
    assert (gpu.loss, gpu.batch_size, gpu.mini_batch_size) == ("cached_infonce", 64, 32)
    mine = BiEncoderTrainConfig(**paths, device="cpu", batch_size=8, train_layers=2)  # written down: kept
    assert (mine.batch_size, mine.train_layers, mine.learning_rate) == (8, 2, 5e-5)
    assert BiEncoderTrainConfig(**paths, device="cpu", lora={}).train_layers is None  # LoRA limits what trains
    plain = BiEncoderTrainConfig(**paths, recipe="none")
    assert plain.train_layers is None and plain.batch_size == BiEncoderTrainConfig.model_fields["batch_size"].default
    again = BiEncoderTrainConfig.model_validate(cpu.model_dump())  # a saved config reloads as it was
    assert again == cpu and BiEncoderTrainConfig(**paths, recipe="gpu").recipe == "gpu"
    assert set(BIENCODER_RECIPES["cpu"]) <= set(BiEncoderTrainConfig.model_fields)
    assert set(RERANKER_RECIPES["gpu"]) <= set(RerankerTrainConfig.model_fields)
    rr = RerankerTrainConfig(**paths, device="cpu")
    assert rr.recipe == "cpu" and (rr.max_length, rr.train_layers, rr.learning_rate) == (160, 4, 2e-4)
    rr = RerankerTrainConfig(**paths, device="cuda")
    assert rr.n_negatives == 7 and rr.max_length == 512 and rr.train_layers is None
    # `lextune run` shares the frozen bottom's outputs when the recipe (not only the YAML) freezes it
    run = RunConfig(inputs=["x"], train_biencoder={"device": "cpu"})
    assert type(_layer_cache(run)).__name__ != "nullcontext"
    assert type(_layer_cache(RunConfig(inputs=["x"], train_biencoder={"recipe": "none"}))).__name__ == "nullcontext"


def test_the_gpu_recipe_runs_here_in_miniature(tmp_path, grouped_data, bundled_dir):
    """The gpu recipe's path (every layer, 1 + 7 negatives, cached InfoNCE in mini-batches) on the CPU, shrunk."""
    from lextune.train import train_biencoder

    corpus, train = grouped_data
    cfg = BiEncoderTrainConfig(recipe="gpu", train_file=str(train), corpus=str(corpus), output_dir=str(tmp_path / "m"),
                               device="cpu", batch_size=2, mini_batch_size=1, max_seq_length=32, max_steps=1,
                               progress=False)
    assert (cfg.loss, cfg.n_negatives, cfg.train_layers, cfg.bf16) == ("cached_infonce", 7, None, False)
    summary = train_biencoder(cfg)
    assert summary["steps"] == 1 and summary["examples"] == 4 and np.isfinite(summary["train_loss"])
    saved = json.loads((tmp_path / "m" / "meta.json").read_text())["config"]
    assert saved["recipe"] == "gpu" and saved["n_negatives"] == 7


def test_a_malformed_training_record_names_file_line_and_field(data):
    """train.jsonl is read through its typed record (lextune.schema.TrainingExample), as every other input is."""
    from lextune.errors import InputFormatError
    from lextune.train.biencoder import build_dataset

    tmp, corpus, _ = data
    bad = tmp / "bad-train.jsonl"
    bad.write_text('{"query": "배상", "pos": ["p1"], "neg": ["p3"]}\n'
                   '{"query": "배상", "pos": "p1", "neg": ["p3"]}\n', encoding="utf-8")
    cfg = BiEncoderTrainConfig(train_file=str(bad), corpus=str(corpus), output_dir=str(tmp / "o"))
    with pytest.raises(InputFormatError) as err:
        build_dataset(cfg)
    assert str(err.value) == f"{bad}:2 (field 'pos'): Input should be a valid list"
