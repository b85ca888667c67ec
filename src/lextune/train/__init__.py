"""Fine-tuning of bi-encoders (and, later, cross-encoder rerankers)."""

from lextune.train.biencoder import BiEncoderTrainConfig, train_biencoder

__all__ = ["BiEncoderTrainConfig", "train_biencoder"]
