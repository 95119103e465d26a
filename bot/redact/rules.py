"""The secret detector table: prefilter anchors and one-line detectors with their checks.

Split out of ``bot/redact.py``, which applies these rules; multi-line private-key blocks are in
``bot/redact_pem.py`` and value heuristics in ``bot/redact_values.py``. Detectors run in table
order and the first to claim a span wins, so provider formats come before name-based ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.redact.values import is_placeholder, plausible_secret, shannon_entropy

PRIVATE_KEY = "private-key"

# A line can only hold a secret if one of these cheap anchors occurs in it; each anchor names the
# family of detectors worth running on that line. Every anchor starts with a literal, so the
# regex engine can skip ahead with a fast substring search: one big alternation is ~20x slower.
# Keyword anchors run over the lowercased text (lowercasing never adds or removes a newline, so
# line numbers agree) because case-insensitive matching also defeats the fast search.
_ANCHORS: tuple[tuple[str, str, bool], ...] = (
    ("aws", r"A(?:KIA|SIA|BIA|CCA)", False),
    ("github", r"gh[pousr]_", False),
    ("github", r"github_pat_", False),
    ("gitlab", r"glpat-", False),
    ("slack", r"xox[abprs]-", False),
    ("slack", r"hooks\.slack\.com/", False),
    ("stripe", r"k_live_", False),
    ("google", r"AIza", False),
    ("sk", r"sk-", False),
    ("sendgrid", r"SG\.", False),
    ("npm", r"npm_", False),
    ("pypi", r"pypi-", False),
    ("jwt", r"eyJ", False),
    ("twilio", r"SK(?=[0-9a-f]{32})", False),
    ("url", r"://(?=[^\s/@]*@)", False),
    ("pkey", r"PRIVATE KEY", False),
    *(("kw", word, True) for word in ("secret", "token", "passw", "pwd", "auth", "key")),
)
ANCHORS: tuple[tuple[str, re.Pattern[str], bool], ...] = tuple(
    (family, re.compile(rx), folded) for family, rx, folded in _ANCHORS
)

# Assignment operators of the languages and formats we see: = := => and : (YAML, JSON, dicts),
# plus comparisons with a literal (== != === !==): the literal is just as hard-coded. "=~" (a
# regex match) and "::" (a scope) are neither. An optional type annotation may sit before "=".
_ASSIGN = (
    r"""["'`\]]{0,2}\s*(?::\s*[A-Za-z_][\w\[\], .|]{0,40}?\s*(?==))?\s*"""
    r"""(?P<op>[!=]==?|:=|=>|=(?![=~])|:(?!:))\s*"""
)
_OPEN_QUOTE = r"""(?:[rRbBuUfF]{0,2}["'`])?"""  # a string literal's prefix and quote
# An HTTP authorization scheme may precede the credential: "Authorization: Bearer <token>".
_SCHEME = r"(?:(?i:bearer|basic|token)\s+)?"


def _quoted(quote: str, group: str) -> str:
    return rf"{quote}{_SCHEME}(?P<{group}>[^{quote}\\\r\n]{{12,400}}){quote}"


_QUOTED_OR_BARE = (
    r"(?:[rRbBuUfF]{0,2}(?:"
    + "|".join(_quoted(q, g) for q, g in (('"', "dq"), ("'", "sq"), ("`", "bq")))
    + rf""")|{_SCHEME}(?P<b>[^\s"'`,;)}}\]<>]{{12,400}}))"""
)
_VALUE_NAMES = ("v", "dq", "sq", "bq", "b")


# Name endings that describe a secret without being one: token_url, password_field, secret_name.
_NAME_SUFFIXES = (
    "name", "type", "url", "uri", "path", "file", "filename", "dir", "field", "len", "length",
    "count", "header", "prefix", "env", "var", "ttl", "timeout", "format", "pattern", "regex",
    "endpoint", "host", "port", "id", "ids", "hint", "label", "mode", "version", "scope",
    "scopes", "size", "limit", "expiry", "expires", "expires_at", "expiration", "class", "kind",
    "column", "index", "enabled", "method", "provider", "backend", "store", "cache", "source",
    "policy", "strategy", "user", "username", "email",
)  # fmt: skip
# Name parts of things that are not secrets: public keys, tokenizers, pagination cursors.
_NAME_PARTS = (
    "public", "publishable", "tokeniz", "tokenis", "nexttoken", "next_token", "pagetoken",
    "page_token", "continuation", "idempotency", "clienttoken", "requesttoken", "request_token",
    "changetoken", "lastused", "last_used",
)  # fmt: skip
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _secret_name(m: re.Match[str]) -> bool:
    """Whether the assigned name (the whole identifier around the keyword) is secret-like."""
    line, start = m.string, m.start("name")
    floor = max(0, start - 80)
    while start > floor and line[start - 1] in _IDENT_CHARS:
        start -= 1
    name = line[start : m.end("name")].lower().rstrip(".-_")
    return not name.endswith(_NAME_SUFFIXES) and not any(w in name for w in _NAME_PARTS)


def value_group(m: re.Match[str]) -> str:
    """The name of the group holding the secret value in a match of any detector."""
    if m.lastgroup in _VALUE_NAMES:  # the value closes last in every pattern: the fast path
        return m.lastgroup
    for group in _VALUE_NAMES:
        if group in m.re.groupindex and m.group(group) is not None:
            return group
    raise ValueError("detector matched without a value group")


_COMPARISONS = frozenset(("==", "!=", "===", "!=="))


def _check_generic(m: re.Match[str]) -> bool:
    group = value_group(m)
    if group == "b" and m.group("op") in _COMPARISONS:
        return False  # token == TOKEN_STRING compares two names; only a quoted literal counts
    after = m.string[m.end() : m.end() + 40].lstrip()[:1]
    if group == "b" and m.group("op") == ":" and after and after in ",)=|]":
        return False  # a type annotation: def sign(private_key: SSHPrivateKeyTypes) -> ...
    return _secret_name(m) and plausible_secret(m.group(group), bare=group == "b")


def _check_token(m: re.Match[str]) -> bool:
    return not is_placeholder(m.group("v"), loose=False)


def _check_random(m: re.Match[str]) -> bool:
    value = m.group("v")
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return mixed and _check_token(m) and shannon_entropy(value) >= 3.0


# Passwords that documentation and local development defaults use: scott:tiger, guest:guest.
_DOC_PASSWORDS = frozenset((
    "pass", "password", "passwd", "pwd", "pw", "secret", "token", "guest", "postgres", "root",
    "admin", "tiger", "test", "mysql", "redis", "user", "changeme",
))  # fmt: skip
_CONSTANT_NAME = re.compile(r"[A-Za-z]+(?:_[A-Za-z]+)+")


_DOC_HOSTS = ("example.com", "example.org", "example.net", ".example", ".test", ".invalid")


def _check_url_password(m: re.Match[str]) -> bool:
    value, host = m.group("v"), m.group("host").lower()
    if value == m.group("user") or value.lower() in _DOC_PASSWORDS:
        return False
    if host == "example" or host.endswith(_DOC_HOSTS):
        return False  # RFC 2606 documentation hosts
    if "[REDACTED:" in value or _CONSTANT_NAME.fullmatch(value):
        return False
    return not is_placeholder(value)


Check = Callable[[re.Match[str]], bool]


@dataclass(frozen=True, slots=True)
class Detector:
    """One kind of secret: how to find it and how to describe it in a finding.

    ``pattern`` puts the secret in group ``v`` (the generic detector: one of dq/sq/bq/b);
    everything else in the match is context that stays visible, such as ``password=``.
    """

    kind: str
    label: str
    family: str
    pattern: re.Pattern[str]
    critical: bool
    impact: str
    check: Check = _check_token
    generic: bool = False
    needs: tuple[str, ...] = ()  # lowercase words one of which the line must contain


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_CLOUD = (
    "call AWS APIs as the key's IAM user or role — read or delete S3 data, start instances for "
    "crypto-mining, or escalate through the policies attached to it"
)
_FORGE = (
    "act as the token's owner: read private repositories, push code, tamper with CI pipelines "
    "and releases, and harvest the further secrets those pipelines hold"
)
_MODEL = "run model requests billed to the organisation and exhaust its budget or rate limits"
_PACKAGE = "publish a malicious version of every package the token can write to, reaching all users"
_LB = r"(?<![A-Za-z0-9_-])"  # a token starts at a word boundary (dash and underscore included)

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "aws-access-key", "AWS access key", "aws",
        _rx(r"(?<![A-Za-z0-9])(?P<v>A(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16})(?![A-Za-z0-9])"),
        True, _CLOUD,
    ),
    Detector(
        "github-token", "GitHub token", "github",
        _rx(_LB + r"(?P<v>gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,242})"
            r"(?![A-Za-z0-9_])"),
        True, _FORGE,
    ),
    Detector(
        "gitlab-token", "GitLab access token", "gitlab",
        _rx(_LB + r"(?P<v>glpat-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*)"), True, _FORGE,
    ),
    Detector(
        "slack-token", "Slack token", "slack",
        _rx(_LB + r"(?P<v>xox[abprs]-[A-Za-z0-9-]{10,250})"),
        True,
        "read channels and direct messages, post as the app or user, and collect further "
        "credentials shared in the workspace",
        _check_random,
    ),
    Detector(
        "slack-webhook", "Slack webhook URL", "slack",
        _rx(r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9+/_-]{16,200})"),
        False,
        "post arbitrary messages, including convincing phishing links, into the channel",
    ),
    Detector(
        "stripe-key", "Stripe live secret key", "stripe",
        _rx(_LB + r"(?P<v>[rs]k_live_[0-9A-Za-z]{20,247})(?![0-9A-Za-z])"),
        True,
        "create charges, payouts and refunds, read customer and payment data, and change the "
        "account's settings",
    ),
    Detector(
        "google-api-key", "Google API key", "google",
        _rx(_LB + r"(?P<v>AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])"),
        False,
        "run up usage billed to the project on every Google API the key is not restricted "
        "from, and read whatever data those APIs expose",
    ),
    Detector(
        "anthropic-key", "Anthropic API key", "sk",
        _rx(_LB + r"(?P<v>sk-ant-[A-Za-z0-9_-]{32,250})"), True, _MODEL,
    ),
    Detector(
        "openai-key", "OpenAI API key", "sk",
        _rx(_LB + r"(?P<v>sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,250}|sk-[A-Za-z0-9]{32,250})"
            r"(?![A-Za-z0-9_-])"),
        True, _MODEL, _check_random,
    ),
    Detector(
        "sendgrid-key", "SendGrid API key", "sendgrid",
        _rx(_LB + r"(?P<v>SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64})(?![A-Za-z0-9_-])"),
        True,
        "send e-mail from the organisation's verified domains — phishing that passes SPF and "
        "DKIM — and read its contact lists",
    ),
    Detector(
        "npm-token", "npm access token", "npm",
        _rx(r"(?<![A-Za-z0-9_])(?P<v>npm_[A-Za-z0-9]{36})(?![A-Za-z0-9])"), True, _PACKAGE,
    ),
    Detector(
        "pypi-token", "PyPI API token", "pypi",
        _rx(r"(?P<v>pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,})"),
        True, _PACKAGE,
    ),
    Detector(
        "twilio-api-key", "Twilio API key", "twilio",
        _rx(r"(?<![A-Za-z0-9])(?P<v>SK[0-9a-f]{32})(?![A-Za-z0-9])"),
        False,
        "together with the key's secret, send messages and place calls billed to the account",
    ),
    Detector(
        "jwt", "JSON Web Token", "jwt",
        _rx(_LB + r"(?P<v>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)"),
        False,
        "replay the token against the service that issued it and act as its subject until it "
        "expires or the signing key is rotated",
    ),
    Detector(
        "url-password", "password in a URL", "url",
        _rx(r"://(?P<user>[^\s:/?#@'\"<>\[\]`]*)"
            r":(?P<v>[^\s/?#@'\"<>`]+)@(?=(?P<host>[^\s/?#@'\":<>`]*[A-Za-z0-9]))"),
        False,
        "log in to the service the URL names (database, message broker, proxy or registry) "
        "with the embedded credentials",
        _check_url_password,
    ),
    Detector(
        "aws-secret-key", "AWS secret access key", "kw",
        _rx(r"(?i:aws)[\w.-]{0,30}?(?P<name>(?i:secret)[\w.-]{0,30})" + _ASSIGN
            + _OPEN_QUOTE + r"(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"),
        True, _CLOUD, _check_random, needs=("aws",),
    ),
    Detector(
        "cloudflare-api-token", "Cloudflare API token", "kw",
        _rx(r"(?i:cloudflare|(?<![a-z])cf)[\w.-]{0,30}?(?P<name>(?i:token|api[_-]?key)[\w.-]{0,20})"
            + _ASSIGN + _OPEN_QUOTE + r"(?P<v>[A-Za-z0-9_-]{37,40})(?![A-Za-z0-9_-])"),
        True,
        "change DNS records, Workers, firewall and cache rules of every zone the token reaches — "
        "enough to redirect or intercept the site's traffic",
        _check_random, needs=("cloudflare", "cf"),
    ),
    Detector(
        "twilio-auth-token", "Twilio auth token", "kw",
        _rx(r"(?i:twilio)[\w.-]{0,30}?(?P<name>(?i:token|secret|auth)[\w.-]{0,20})" + _ASSIGN
            + _OPEN_QUOTE + r"(?P<v>[0-9a-f]{32})(?![0-9A-Za-z])"),
        True,
        "send messages and place calls billed to the account, read message history and change "
        "phone-number configuration",
        _check_random, needs=("twilio",),
    ),
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"(?P<name>(?i:secret|token|passw|pwd|api[_-]?key|access[_-]?key|private[_-]?key"
            r"|auth(?!or(?!i[sz])))[\w.-]{0,40})" + _ASSIGN + _QUOTED_OR_BARE),
        False,
        "use the value wherever it is accepted — typically an API, database or signing key — "
        "with whatever access it grants",
        _check_generic,
        generic=True,
    ),
)  # fmt: skip

ORDER: dict[str, int] = {d.kind: i for i, d in enumerate(DETECTORS)}
_PLAN: dict[frozenset[str], tuple[Detector, ...]] = {}


def detectors_for(families: frozenset[str]) -> tuple[Detector, ...]:
    """The detectors the prefilter families of a line call for, in table order (memoised)."""
    plan = _PLAN.get(families)
    if plan is None:
        plan = _PLAN[families] = tuple(d for d in DETECTORS if d.family in families)
    return plan
