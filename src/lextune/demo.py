"""The bundled demo: embed the statutes shipped with lextune and answer a few questions with them.

This grows into the full offline pipeline (ingest -> synth -> mine -> train -> eval); for now it shows
the foundation working end to end on real statutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from lextune.ingest.lawgo import iter_law_json_paragraph_texts
from lextune.jsonl import write_jsonl_atomic

DEMO_QUESTIONS = [
    "보이스피싱으로 돈을 이체했는데 금융회사가 배상해야 하나요?",
    "은행이 파산하면 예금은 얼마까지 보호받을 수 있나요?",
    "금융상품을 팔면서 설명을 제대로 하지 않았다면 어떤 책임이 있나요?",
    "빚 독촉 전화를 밤늦게 하는 것은 불법인가요?",
]


def bundled_laws() -> list[Path]:
    """The statutes shipped with lextune (law.go.kr JSON, public works)."""
    root = resources.files("lextune") / "data" / "laws"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".json"))


@dataclass
class DemoHit:
    question: str
    rank: int
    score: float
    chunk_id: str
    text: str


def run_demo(out_dir: str | Path, *, model: str = "bundled:multilingual-e5-small", k: int = 3,
             progress: bool = True) -> list[DemoHit]:
    """Embed the bundled statutes' paragraphs into ``out_dir`` and search the demo questions."""
    from lextune.models.biencoder import BiEncoder
    from lextune.models.embed import embed_file

    out_dir = Path(out_dir)
    records = []
    for law in bundled_laws():
        for i, text in enumerate(iter_law_json_paragraph_texts(law)):
            records.append({"id": f"{law.stem}-{i:04d}", "text": text})
    passages = out_dir / "passages.jsonl"
    write_jsonl_atomic(passages, records)
    encoder = BiEncoder(model)
    embed_file(encoder, passages, out_dir / "embeddings", side="passage", progress=progress)
    data = np.load(out_dir / "embeddings" / "embeddings.npz")
    ids, emb = data["ids"], data["embeddings"]
    by_id = {r["id"]: r["text"] for r in records}
    q = encoder.encode_queries(DEMO_QUESTIONS)
    scores = q @ emb.T
    hits: list[DemoHit] = []
    for qi, question in enumerate(DEMO_QUESTIONS):
        top = np.argsort(-scores[qi])[:k]
        for rank, j in enumerate(top, start=1):
            hits.append(DemoHit(question, rank, float(scores[qi, j]), str(ids[j]), by_id[str(ids[j])]))
    return hits
