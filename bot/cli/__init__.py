"""The ``secreview`` command (its grammar and commands live in the submodules)."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secreview`` console script."""
    from bot.cli.review import main as run

    return run(argv)


__all__ = ["main"]
