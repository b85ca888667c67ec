"""Synthetic training data without labels: queries from an LLM or offline generators."""

from lextune.synth.pipeline import SynthConfig, SynthSummary, synth

__all__ = ["SynthConfig", "SynthSummary", "synth"]
