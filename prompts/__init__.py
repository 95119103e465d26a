"""Prompt templates, security policy and output schema shipped with secreview."""
