"""Fine-tuning of bi-encoders and cross-encoder rerankers (full, LoRA, QLoRA on CUDA)."""

from lextune.train.biencoder import BiEncoderTrainConfig, train_biencoder
from lextune.train.query_encoder import QueryEncoderConfig, distill_query_encoder
from lextune.train.reranker import RerankerTrainConfig, merge_adapter, train_reranker

__all__ = ["BiEncoderTrainConfig", "QueryEncoderConfig", "RerankerTrainConfig", "distill_query_encoder",
           "merge_adapter", "train_biencoder", "train_reranker"]
