"""The ``secreview`` command."""

from bot.cli.review import main

__all__ = ["main"]
