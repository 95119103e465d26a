"""Secrets: detection and placeholder redaction before any text leaves the process."""
