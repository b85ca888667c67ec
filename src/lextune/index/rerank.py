"""Cross-encoder reranking of a run's top-k (any HF sequence-classification folder, or one lextune trained)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from lextune.extras import optional_import
from lextune.runs import Run


class RerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    k: int = 50
    batch_size: int = 32
    max_length: int = 512


class Reranker:
    """Scores (query, passage) pairs with a sentence-transformers CrossEncoder."""

    def __init__(self, config: RerankConfig, device: str | None = None) -> None:
        CrossEncoder = optional_import("sentence_transformers", "models", "reranking").CrossEncoder  # noqa: N806
        from lextune.models.resolve import resolve_model

        self.config = config
        resolved = resolve_model(config.model)
        self.model = CrossEncoder(resolved.load_path, num_labels=1, max_length=config.max_length, device=device)
        if resolved.adapter:  # a LoRA reranker: adapter weights plus its own classification head
            self.model.load_adapter(resolved.adapter)
            self.model.eval()

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        scores = self.model.predict(pairs, batch_size=self.config.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
        return [float(s) for s in scores]

    def rerank(self, queries: dict[str, str], run: Run, texts: dict[str, str], k: int | None = None,
               cache: dict[tuple[str, str], float] | None = None) -> Run:
        """Re-score the top ``k`` of each ranking; what lies below k keeps its order under the reranked.
        ``cache`` ((query id, doc id) -> score, filled here) spares pairs another ranking of the same queries
        already scored."""
        k = k or self.config.k
        cache = {} if cache is None else cache
        heads: dict[str, list[str]] = {}
        out: Run = {}
        for q, docs in run.items():
            ranked = [d for d, _ in sorted(docs.items(), key=lambda kv: -kv[1])]
            heads[q] = ranked[:k]
            out[q] = {d: -1e6 - i for i, d in enumerate(ranked[k:])}  # below the head, in its order
        todo = [(q, d) for q, head in heads.items() for d in head if (q, d) not in cache]
        for key, s in zip(todo, self.score([(queries[q], texts[d]) for q, d in todo]), strict=True):
            cache[key] = s
        for q, head in heads.items():
            out[q].update({d: cache[q, d] for d in head})
        return out
