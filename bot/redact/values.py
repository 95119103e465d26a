"""Value heuristics for secret detection: placeholders, entropy, and "is this a real literal?".

The aim is few false positives: a reviewer who sees ``password = get_password()`` flagged stops
trusting every other finding, so only literals that look random, and are not documentation,
template text or patterned test values, count as secrets. Every pattern runs on RE2.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

from bot.redact.linear import compile as _rx

_PLACEHOLDER_RE = _rx(r"\[REDACTED:[a-z0-9-]+\]")


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
    if _HEX.full(value):
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
_TEMPLATE_RE = _rx(
    r"\$\{|\{\{|\}\}|%\(|%s\b|#\{|<%|\$\(|^\$[A-Za-z_]\w*$|^\{[^{}]*\}$|^<[^<>]*>$"
    r"|environ|process\.env|getenv|\bENV\["
)


def longest_run(value: str) -> int:
    """The length of the longest run of one repeated character."""
    best = run = 0
    previous = ""
    for c in value:
        run = run + 1 if c == previous else 1
        previous = c
        best = max(best, run)
    return best


def patterned(value: str) -> bool:
    """Whether ``value`` is built from a visible pattern, as test values are: a repeated block
    ("1bcdefghij2bcdefghij..."), long runs of one character ("lcccccccX2kccccccc"), or an
    alphabet in order. Random tokens practically never are: a repeated 4-gram has odds below
    1e-4 in 40 random base62 characters."""
    if len(value) < 12:
        return False
    if longest_run(value) >= 6:
        return True
    grams = [value[i : i + 4] for i in range(len(value) - 3)]
    repeated = len(grams) - len(set(grams))
    if repeated >= max(4, len(grams) // 4):
        return True
    ascending = sum(1 for a, b in itertools.pairwise(value) if ord(b) == ord(a) + 1)
    return ascending >= len(value) // 2


_REFERENCE_PREFIXES = ("$", "%", "{{", "<", "@(")


def is_reference(value: str) -> bool:
    """Whether ``value`` names where the secret lives instead of holding it: an environment or
    template interpolation (``$DB_PASSWORD``, ``%PASS%``, ``{{ secret }}``, ``<password>``)."""
    return value.startswith(_REFERENCE_PREFIXES)


def is_placeholder(value: str, *, loose: bool = True, runs: bool = True) -> bool:
    """Whether ``value`` is documentation, template or patterned test text, not a real secret.

    ``runs`` false skips the repeated-character test: key material (an OpenSSH key body always
    holds ``AAAAAA``) is base64 of binary, where long runs are normal.
    """
    lower = value.lower()
    if any(w in lower for w in _LONG_WORDS) or (runs and patterned(value)):
        return True
    if _TEMPLATE_RE.test(value) or len(set(value)) <= 2:
        return True
    return loose and any(w in lower for w in _SHORT_WORDS)


_DOTTED_NAME = _rx(r"[A-Za-z_$][\w$]*(?:(?:\.|->|::)[A-Za-z_$][\w$]*)+")
_WORD = r"(?:[A-Za-z]+\d{0,3}|\d+)"
_WORDS = _rx(f"{_WORD}(?:[-_.:/ ]+{_WORD})+")
# "HTTPServer" splits as "HTTPS" + "erver" (RE2 has no look-ahead to stop before "S");
# only the count of word characters matters here, which that hardly changes.
_SEGMENT = _rx(r"[A-Z][a-z]+|[A-Z]+|[a-z]+|\d+")
_VOWEL = _rx(r"[aeiouyAEIOUY]")
_IDENTIFIER = _rx(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX = _rx(r"[0-9a-f]+|[0-9A-F]+")
_ONE_CLASS = _rx(r"[a-z]+|[A-Z]+|\d+|[a-z_]+|[A-Z_]+")
_FILE_LIKE = _rx(
    r"(?i)^(?:\.{0,2}/|~/)[\w.-]+(?:/[\w.-]+)+/?$|^[A-Za-z]:\\|://|^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
    r"|\.(?:json|pem|key|p12|pfx|crt|cer|der|pub|txt|ya?ml|env|ini|cfg|conf|toml|jks|keystore"
    r"|html?|js|py|rb|go|php)$",
)
_UUID_OR_DATE = _rx(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{4}-\d\d-\d\d)"
)
_LITERAL_WORDS = frozenset(("true", "false", "null", "none", "nil", "undefined", "required"))
_CODE_CHARS = _rx(r"[()\[\]{}<>\\]|\$[A-Za-z_{(]")
_SPACE = _rx(r"\s")
_PAIRS = (("{", "}"), ("[", "]"), ("(?", ")"))
_REGEX_HINT = _rx(r"\.\*|\.\+|\\[dswbDSWB]|\[\^|^/\^")


def wordy(value: str) -> bool:
    """Mostly made of pronounceable words, as in RSAPrivateKeyTypes; random text is not.

    Measured on 18k mixed-case identifiers from site-packages against random base62: 95% of the
    identifiers are wordy, and 3% of random 12-character strings (under 1% from 24 on).
    """
    words = sum(len(s) for s in _SEGMENT.findall(value) if len(s) >= 3 and _VOWEL.test(s))
    return words >= 0.7 * len(value)


def _bare_literal(value: str) -> bool:
    """Whether an unquoted value is a literal (.env, YAML, ini) rather than a code expression."""
    # settings.TOKEN, get_password(), os.environ[...], the "TOKEN:" of "if x == TOKEN:"
    code = _CODE_CHARS.test(value) or _DOTTED_NAME.full(value) or value.endswith(":")
    return not code


# Password hashes in the formats of Django, passlib and crypt(3): a hash, not the password.
_HASH_FORMAT = _rx(
    r"^(?:pbkdf2_[a-z0-9]+|argon2|bcrypt(?:_sha256)?|scrypt|sha[0-9]+_crypt|md5_crypt)\$"
    r"|^\$(?:2[abxy]?|5|6|argon2(?:id|i|d)|scrypt|pbkdf2[a-z0-9-]*|y|7)\$"
)


def plausible_secret(value: str, *, bare: bool) -> bool:
    """Whether a literal assigned to a secret-looking name is likely a real secret."""
    if _HASH_FORMAT.test(value):
        return False
    if _SPACE.test(value) or "[REDACTED:" in value or (bare and not _bare_literal(value)):
        return False
    if any(a in value and b in value for a, b in _PAIRS) or _REGEX_HINT.test(value):
        return False  # a format string or a regular expression
    if _IDENTIFIER.full(value) and wordy(value):
        return False  # "NextPageToken", password = DEFAULT_PASSWORD
    if value.lower() in _LITERAL_WORDS or is_placeholder(value):
        return False
    if _WORDS.full(value) or _ONE_CLASS.full(value):
        return False  # identifiers, prose, paths of words: "please-login-again", "TOKEN_VALUE"
    if _FILE_LIKE.test(value) or _UUID_OR_DATE.test(value):
        return False  # UUIDs in secret-named fields are request or idempotency ids far more often
    return shannon_entropy(value) >= entropy_threshold(value)
