"""Evaluation: retrieval metrics through ranx (evaluation never imports training)."""

from lextune.eval.metrics import DEFAULT_METRICS, evaluate_run

__all__ = ["DEFAULT_METRICS", "evaluate_run"]
