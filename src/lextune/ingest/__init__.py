"""Ingest: read Korean legal documents into structured chunks. Runs without torch."""
