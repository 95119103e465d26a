"""One kind of secret: its pattern, the checks a match must pass, and how a finding describes it.

Patterns are RE2 (``bot.redact.linear``): no look-around, so the word boundaries a token needs
are ``edge`` characters checked here, beside the match, instead of inside the pattern.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from bot.redact.linear import Match, Regex, has, span
from bot.redact.values import is_placeholder, shannon_entropy

VALUE_GROUPS = ("v", "dq", "sq", "bq", "b")
Check = Callable[[Match, str], bool]  # (match, the value) → is it a secret?

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
WORD = ALNUM + "_"
TOKEN = WORD + "-"
BASE64 = ALNUM + "+/"


def value_group(m: Match) -> str:
    """The name of the group holding the secret value in a match of any detector."""
    for name in VALUE_GROUPS:
        if has(m, name) and span(m, name)[0] >= 0:
            return name
    raise ValueError("detector matched without a value group")


def value_span(m: Match) -> tuple[int, int]:
    """Where the secret value is in the matched text."""
    return span(m, value_group(m))


def check_token(m: Match, value: str) -> bool:
    """A provider token: anything but documentation or patterned test text."""
    return not is_placeholder(value, loose=False)


def check_random(m: Match, value: str) -> bool:
    """A token whose format alone is weak evidence: it must also look random."""
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return mixed and shannon_entropy(value) >= 3.0 and check_token(m, value)


def check_letters(m: Match, value: str) -> bool:
    """A token of letters only (HuggingFace): random letters, not a word or a pattern."""
    upper = sum(1 for c in value if c.isupper())
    return 0 < upper < len(value) and shannon_entropy(value) >= 3.5 and check_token(m, value)


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of secret: how to find it and how to describe it in a finding.

    ``pattern`` puts the secret in group ``v`` (the generic detector: one of dq/sq/bq/b);
    everything else in the match is context that stays visible, such as ``password=``.
    ``edge`` lists the characters that may not touch the value on either side (a token is a
    whole word); ``confident`` detectors are precise enough to run on every outgoing request.
    """

    kind: str
    label: str
    family: str
    pattern: Regex
    critical: bool
    impact: str
    check: Check = check_token
    generic: bool = False
    edge: str = ""
    confident: bool = False

    def accepts(self, m: Match) -> tuple[int, int] | None:
        """The span of the secret if a match is one (clear edges, check passed), else None."""
        start, end = value_span(m)
        text = m.string
        if self.edge and (
            (start > 0 and text[start - 1] in self.edge)
            or (end < len(text) and text[end] in self.edge)
        ):
            return None
        value = text[start:end]
        if not self.check(m, value) or is_public_example(value):
            return None
        return start, end


# --- known public values --------------------------------------------------------------------------
# sha256 of credentials published as examples (AWS documentation, the Azurite and Cosmos DB
# emulators' fixed keys, jwt.io's sample token): reporting them is noise, and they stay hashed
# here so the repository never carries anything that looks like a live key.
_PUBLIC_EXAMPLES = frozenset((
    "0011cc25eb4320717494d2703e8cba85743e71b500283c21c8b88147992f9059",  # Azurite account key
    "aa6547439583c3a275d4542a0df6c1ad6a863971be9f2a2220f027cc02aef615",  # Cosmos DB emulator key
    "7f75367e7881255134e1375e723d1dea8ad5f6a4fdb79d938df1f1754a830606",  # jwt.io sample token
    "1a5d44a2dca19669d72edf4c4f1c27c4c1ca4b4408fbb17f6ce4ad452d78ddb3",  # AWS docs key id
    "78314b11be2e581549ac1c4f616563fad3fdf0c3b71678f6e2299182080e0598",  # AWS docs secret key
))  # fmt: skip


def digest(value: str) -> str:
    """sha256 hex of a value (how known public examples are listed)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def is_public_example(value: str) -> bool:
    """Whether ``value`` is a credential published as an example."""
    return digest(value) in PUBLIC_EXAMPLES


PUBLIC_EXAMPLES: frozenset[str] = _PUBLIC_EXAMPLES
