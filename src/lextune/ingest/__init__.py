"""Ingest: read Korean legal documents into structured chunks. Runs without torch."""

from lextune.ingest.pipeline import IngestConfig, IngestSummary, ingest, ingest_chunks, read_chunks

__all__ = ["IngestConfig", "IngestSummary", "ingest", "ingest_chunks", "read_chunks"]
