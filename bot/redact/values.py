"""Value heuristics for secret detection: placeholders, entropy, and "is this a real literal?".

Split out of ``bot/redact_rules.py``. The aim is few false positives: a reviewer who sees
``password = get_password()`` flagged stops trusting every other finding, so only literals that
look random, and are not documentation or template text, count as secrets.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_PLACEHOLDER_RE = re.compile(r"\[REDACTED:[a-z0-9-]+\]")


def placeholder(kind: str) -> str:
    """The text that replaces a secret of ``kind``."""
    return f"[REDACTED:{kind}]"


def placeholder_spans(line: str) -> list[tuple[int, int]]:
    """Spans of placeholders already in ``line`` (they must never be redacted again)."""
    if "[REDACTED:" not in line:
        return []
    return [m.span() for m in _PLACEHOLDER_RE.finditer(line)]


def count_placeholders(text: str) -> int:
    """How many ``[REDACTED:kind]`` placeholders ``text`` holds."""
    return len(_PLACEHOLDER_RE.findall(text)) if "[REDACTED:" in text else 0


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def entropy_threshold(value: str) -> float:
    """The entropy in bits/char that a random literal like ``value`` reliably exceeds.

    About 3.5, lowered for short values (12 random characters rarely reach 3.5) and for hex,
    whose 16 symbols cap it at 4.
    """
    ceiling = math.log2(max(len(value), 2))
    if _HEX.fullmatch(value):
        return min(3.0, ceiling - 1.3)
    return min(3.5, ceiling - 0.7)


# Words that only occur in documentation values. Long words are safe to check inside provider
# tokens too (a random 40-character token practically never spells "placeholder"); the short
# ones would make long random tokens slip through now and then, so only loose checks use them.
_LONG_WORDS = ("example", "placeholder", "changeme", "change_me", "change-me", "redacted")
_SHORT_WORDS = (
    "dummy", "fake", "sample", "your_", "your-", "yourkey", "yourtoken", "yoursecret",
    "insert", "replace", "mock", "notreal", "not_real", "not-real", "todo", "xxxx",
    "****", "...", "…", "_here", "-here", "secret_key_base", "password123", "12345", "abcdef",
    "qwerty", "password", "passw0rd",
)  # fmt: skip
_REPEAT_RUN = re.compile(r"(.)\1{5,}")
_TEMPLATE_RE = re.compile(
    r"\$\{|\{\{|\}\}|%\(|%s\b|#\{|<%|\$\(|^\$[A-Za-z_]\w*$|^\{[^{}]*\}$|^<[^<>]*>$"
    r"|environ|process\.env|getenv|\bENV\["
)


def is_placeholder(value: str, *, loose: bool = True) -> bool:
    """Whether ``value`` is documentation or template text rather than a real secret."""
    lower = value.lower()
    if any(w in lower for w in _LONG_WORDS) or _REPEAT_RUN.search(value):
        return True
    if _TEMPLATE_RE.search(value) or len(set(value)) <= 2:
        return True
    return loose and any(w in lower for w in _SHORT_WORDS)


_DOTTED_NAME = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|->|::)[A-Za-z_$][\w$]*)+")
_WORD = r"(?:[A-Za-z]+\d{0,3}|\d+)"
_WORDS = re.compile(f"{_WORD}(?:[-_.:/ ]+{_WORD})+")
_SEGMENT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_ONE_CLASS = re.compile(r"[a-z]+|[A-Z]+|\d+|[a-z_]+|[A-Z_]+")
_FILE_LIKE = re.compile(
    r"^(?:\.{0,2}/|~/)[\w.-]+(?:/[\w.-]+)+/?$|^[A-Za-z]:\\|://|^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
    r"|\.(?:json|pem|key|p12|pfx|crt|cer|der|pub|txt|ya?ml|env|ini|cfg|conf|toml|jks|keystore"
    r"|html?|js|py|rb|go|php)$",
    re.IGNORECASE,
)
_UUID_OR_DATE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\d{4}-\d\d-\d\d"
)
_LITERAL_WORDS = frozenset(("true", "false", "null", "none", "nil", "undefined", "required"))
_CODE_CHARS = re.compile(r"[()\[\]{}<>\\]|\$[A-Za-z_{(]")
_SPACE = re.compile(r"\s")
_PAIRS = (("{", "}"), ("[", "]"), ("(?", ")"))
_REGEX_HINT = re.compile(r"\.\*|\.\+|\\[dswbDSWB]|\[\^|^/\^")


def wordy(value: str) -> bool:
    """Mostly made of pronounceable words, as in RSAPrivateKeyTypes; random text is not.

    Measured on 18k mixed-case identifiers from site-packages against random base62: 95% of the
    identifiers are wordy, and 3% of random 12-character strings (under 1% from 24 on).
    """
    words = sum(len(s) for s in _SEGMENT.findall(value) if len(s) >= 3 and _VOWEL.search(s))
    return words >= 0.7 * len(value)


def _bare_literal(value: str) -> bool:
    """Whether an unquoted value is a literal (.env, YAML, ini) rather than a code expression."""
    # settings.TOKEN, get_password(), os.environ[...], the "TOKEN:" of "if x == TOKEN:"
    code = _CODE_CHARS.search(value) or _DOTTED_NAME.fullmatch(value) or value.endswith(":")
    return not code


def plausible_secret(value: str, *, bare: bool) -> bool:
    """Whether a literal assigned to a secret-looking name is likely a real secret."""
    if _SPACE.search(value) or "[REDACTED:" in value or (bare and not _bare_literal(value)):
        return False
    if any(a in value and b in value for a, b in _PAIRS) or _REGEX_HINT.search(value):
        return False  # a format string or a regular expression
    if _IDENTIFIER.fullmatch(value) and wordy(value):
        return False  # "NextPageToken", password = DEFAULT_PASSWORD
    if value.lower() in _LITERAL_WORDS or is_placeholder(value):
        return False
    if _WORDS.fullmatch(value) or _ONE_CLASS.fullmatch(value):
        return False  # identifiers, prose, paths of words: "please-login-again", "TOKEN_VALUE"
    if _FILE_LIKE.search(value) or _UUID_OR_DATE.match(value):
        return False  # UUIDs in secret-named fields are request or idempotency ids far more often
    return shannon_entropy(value) >= entropy_threshold(value)
