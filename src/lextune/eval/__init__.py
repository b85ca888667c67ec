"""Evaluation: exact retrieval metrics, significance tests, failure notebook (never imports training)."""

from lextune.eval.metrics import DEFAULT_METRICS, evaluate_run

__all__ = ["DEFAULT_METRICS", "evaluate_run"]
