"""Local, dependency-free token estimates for budgeting prompts.

The model's own count comes back in ``usage``; budgets only need a cheap estimate that errs on
the high side for code. BPE tokenizers average about 3.3-4 characters per token on source code,
so 3.3 keeps units safely under the budget without downloading any vocabulary.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 3.3


def estimate_tokens(text: str) -> int:
    """Estimated token count of ``text`` (never below 1 for non-empty text)."""
    if not text:
        return 0
    return int(len(text) / CHARS_PER_TOKEN) + 1


def estimate_chars(tokens: int) -> int:
    """How many characters fit in ``tokens`` by the same estimate."""
    return int(tokens * CHARS_PER_TOKEN)
