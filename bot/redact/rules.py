"""The detector table and its prefilter: provider formats first, then connection strings, then
secrets recognised by the name they are assigned to.

Detectors run in table order and the first to claim a span wins. A line is only worth checking
if one of the prefilter anchors occurs in it: all anchors are one RE2 alternation, so the whole
text is read once, and each anchor names the family of detectors to run on its lines.
"""

from __future__ import annotations

from bot.redact.connections import CONNECTIONS
from bot.redact.detector import ALNUM, BASE64, TOKEN, Detector, check_random
from bot.redact.linear import Match, group, span
from bot.redact.linear import compile as _rx
from bot.redact.providers import PROVIDERS
from bot.redact.values import is_reference, plausible_secret

PRIVATE_KEY = "private-key"

# family → anchor. Keyword anchors are case-insensitive inside the pattern (RE2 keeps that linear).
_ANCHORS: tuple[tuple[str, str], ...] = (
    ("aws", r"A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA"),
    ("github", r"gh[pousr]_|github_pat_"),
    ("gitlab", r"gl(?:pat|dt|rt|ptt|soat|oas|ft|imt|cbt|ffct|agent)-|GR1348941"),
    ("slack", r"xox[abposre][.-]|xapp-|hooks\.slack\.com/"),
    ("stripe", r"[rs]k_(?:live|prod)_|whsec_"),
    ("google", r"AIza|GOCSPX-|ya29\.|1//0"),
    ("sk", r"sk-"),
    ("ai", r"hf_|api_org_|gsk_|pplx-|r8_|xai-"),
    ("sendgrid", r"SG\."),
    ("registry", r"npm_|pypi-|rubygems_|dckr_|oy2"),
    ("twilio", r"SK[0-9a-f]{32}"),
    ("jwt", r"eyJ"),
    ("cloud", r"do[opr]_v1_|hv[sb]\.|\.atlasv1\.|LTAI|pul-|sbp_|pscale_|fo1_|HRKU-|dp\."
              r"|AGE-SEC|dapi"),
    ("saas", r"shp(?:at|ca|pa|ss)_|glsa_|glc_|sntry|NR(?:AK|II|JS)-|lin_api_|PMAK-|ATATT3|ntn_"
             r"|xkeysib-|sq0|EAAA|rzp_live_|key-[0-9a-f]|-us[0-9]"),
    ("chat", r"discord(?:app)?\.com/api/webhooks/|[0-9]{8}:A"),
    ("social", r"EAA[B-Z]|A{21}[0-9A-Za-z%]"),
    ("more", r"sk\.eyJ|sl\.[A-Za-z0-9_-]{20}|dt0c01\.|pnu_|webhook\.office\.com/|p8e-|FLWSECK"
             r"|duffel_|EZAK|shippo_|tfp_|rdme_|ico-|tk-us-|fio-u-|CLOJARS_|pat\.|v1\.0-|SSWS"
             r"|CFPAT-|sgp_|bkua_|CCIPAT_|nfp_|figd_|lsv2_|pcsk_|re_|napi_|ops_eyJ|csk-|fw_"
             r"|access-(?:sandbox|development|production)-|pat-(?:na|eu)[0-9]-"),
    ("more2", r"[?&]sig=|access_token\$production\$|AAAA[A-Za-z0-9_-]{7}:APA91|AKCp|cmVmdGtu"
              r"|ATBB|secret_[A-Za-z0-9]{10}|cio[A-Za-z0-9]{10}|[MNO][A-Za-z0-9]{23,25}\.[A-Za-z0-9_-]{6}\."),
    ("net", r"tskey-|pat[0-9A-Za-z]{14}\.|(?i:machine)[ \t]"),
    ("azure", r"Q~|AccountKey|SharedAccessKey|SharedSecretValue"),
    ("url", r"://"),
    ("dsn", r"@(?:tcp6?|unix)\("),
    ("pdo", r"PDO[ \t]*\(|mysqli?_?(?:connect)?[ \t]*\("),
    ("cli", r"[ \t](?:-u|--user|-p|--password=|-a)[ \t=]?"),
    ("pscred", r"(?i:ConvertTo-SecureString)"),
    ("pkey", r"PRIVATE KEY|Private-Lines:"),
    ("pkey64", r"LS0tLS1CRUdJTi"),
)  # fmt: skip
PREFILTER = _rx("|".join(f"({rx})" for _, rx in _ANCHORS))
FAMILIES: tuple[str, ...] = tuple(family for family, _ in _ANCHORS)  # group i+1 → FAMILIES[i]
# Names are a second pass of their own, so that no other anchor's match can hide a keyword.
KEYWORDS = _rx(r"(?i:secret|token|pass|pwd|auth|key|credential|creds|bearer)")

# Assignment operators of the languages and formats we see: = := => and : (YAML, JSON, dicts),
# plus comparisons with a literal (== != === !==): the literal is just as hard-coded. "=~" (a
# regex match) and "::" (a scope) are neither (checked after the match: RE2 has no look-ahead).
# An optional type annotation may sit before "=".
_ASSIGN = (
    r"""["'`\]]{0,2}[ \t]*(?::[ \t]*[A-Za-z_][\w\[\], .|]{0,40}?[ \t]*)?"""
    r"""(?P<op>[!=]==?|:=|=>|=|:)[ \t]*"""
)
_OPEN_QUOTE = r"""(?:[rRbBuUfF]{0,2}["'`])?"""  # a string literal's prefix and quote
# An HTTP authorization scheme may precede the credential: "Authorization: Bearer <token>".
_SCHEME = r"(?:(?i:bearer|basic|token)[ \t]+)?"


def _quoted(quote: str, group: str) -> str:
    return rf"{quote}{_SCHEME}(?P<{group}>[^{quote}\\\r\n]{{12,}}){quote}"


_QUOTED_OR_BARE = (
    r"(?:[rRbBuUfF]{0,2}(?:"
    + "|".join(_quoted(q, g) for q, g in (('"', "dq"), ("'", "sq"), ("`", "bq")))
    + rf""")|{_SCHEME}(?P<b>[^\s"'`,;)}}\]<>]{{12,}}))"""
)


def _op_ok(m: Match) -> bool:
    """The operator is an assignment or a comparison: not "=~" (a regex match), not "::"."""
    op = group(m, "op")
    end = span(m, "op")[1]
    after = m.string[end : end + 1]
    return not ((op == "=" and after in ("=", "~")) or (op == ":" and after == ":"))


# --- names ---------------------------------------------------------------------------------------

# Name endings that describe a secret without being one: token_url, password_field, secret_name.
_NAME_SUFFIXES = (
    "name", "type", "url", "uri", "path", "file", "filename", "dir", "field", "len", "length",
    "count", "header", "prefix", "env", "var", "ttl", "timeout", "format", "pattern", "regex",
    "endpoint", "host", "port", "id", "ids", "hint", "label", "mode", "version", "scope",
    "scopes", "size", "limit", "expiry", "expires", "expires_at", "expiration", "class", "kind",
    "column", "index", "enabled", "method", "provider", "backend", "store", "cache", "source",
    "policy", "strategy", "user", "username", "email", "model", "arn", "form", "confirmation",
    "hash", "hashed", "digest", "salt", "sha", "sha256", "md5", "checksum",
)  # fmt: skip
# Name parts of things that are not secrets: public keys, tokenizers, pagination cursors.
_NAME_PARTS = (
    "public", "publishable", "tokeniz", "tokenis", "nexttoken", "next_token", "pagetoken",
    "page_token", "continuation", "idempotency", "clienttoken", "requesttoken", "request_token",
    "changetoken", "lastused", "last_used", "csrf",
)  # fmt: skip
_STRONG = ("password", "passwd", "passphrase", "secret", "token", "credential", "creds",
           "bearer", "authorization", "apikey", "accesskey", "privatekey")  # fmt: skip
_WHOLE = frozenset(("pass", "pw", "pwd"))
_AUTH_NEXT = frozenset(("key", "code", "value", "string", "str", "header", "basic"))
_PAIRED = frozenset(("api", "access", "private"))
_IDENT_CHARS = frozenset(ALNUM + "_.-")


def segments(name: str) -> list[str]:
    """Lower-case words of an identifier: snake, kebab, dotted, camelCase ("APIKey": api, key)."""
    out: list[str] = []
    word = ""
    for i, c in enumerate(name):
        if c in "_.-$ ":
            if word:
                out.append(word.lower())
            word = ""
            continue
        if word and c.isupper():
            prev_lower = word[-1].islower() or word[-1].isdigit()
            next_lower = i + 1 < len(name) and name[i + 1].islower()
            if prev_lower or (word[-1].isupper() and next_lower):
                out.append(word.lower())
                word = ""
        word += c
    if word:
        out.append(word.lower())
    return out


def secret_like(name: str) -> bool:
    """Whether an identifier names a secret (db_password, apiKey, AUTH) rather than something
    about one (token_url, password_field, AUTH_USER_MODEL, unauthenticated)."""
    lower = name.lower().rstrip(".-_")
    if not lower or lower.endswith(_NAME_SUFFIXES) or any(w in lower for w in _NAME_PARTS):
        return False
    words = segments(name)
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else None
        if any(k in word for k in _STRONG) or word in _WHOLE:
            return True
        if word == "auth" and (following is None or following in _AUTH_NEXT):
            return True
        if word in _PAIRED and following == "key":
            return True
    return False


def _secret_name(m: Match) -> bool:
    """Whether the assigned name (the whole identifier around the keyword) is secret-like."""
    line, (start, end) = m.string, span(m, "name")
    floor = max(0, start - 80)
    while start > floor and line[start - 1] in _IDENT_CHARS:
        start -= 1
    return secret_like(line[start:end])


_COMPARISONS = frozenset(("==", "!=", "===", "!=="))
_MAX_VALUE = 400


def _check_generic(m: Match, value: str) -> bool:
    if len(value) > _MAX_VALUE:
        return False  # a blob, not a credential (the bound lives here: RE2 unrolls counts)
    bare = span(m, "b")[0] >= 0
    op = group(m, "op")
    if not _op_ok(m) or (bare and op in _COMPARISONS):
        return False  # token == TOKEN_STRING compares two names; only a quoted literal counts
    after = m.string[m.end() : m.end() + 40].split("\n", 1)[0].lstrip()[:1]
    if bare and op == ":" and after and after in ",)=|]":
        return False  # a type annotation: def sign(private_key: SSHPrivateKeyTypes) -> ...
    return _secret_name(m) and plausible_secret(value, bare=bare)


def _check_named(m: Match, value: str) -> bool:
    return _op_ok(m) and check_random(m, value)


_CLOUD = (
    "call the cloud provider's APIs as the credential's identity — read or delete data, start "
    "machines for crypto-mining, or escalate through the permissions attached to it"
)
_OBSERVE = (
    "read the organisation's logs, traces and dashboards (which often hold further secrets and "
    "personal data) and change or silence its alerting"
)


def _named(prefix: str, name: str, value: str) -> str:
    lead = f"{prefix}[\\w.-]{{0,30}}?(?P<name>{name}[\\w.-]{{0,20}})"
    return lead + _ASSIGN + _OPEN_QUOTE + value


NAMED: tuple[Detector, ...] = (
    Detector(
        "aws-secret-key", "AWS secret access key", "kw",
        _rx(_named(r"(?i:aws)", r"(?i:secret)", r"(?P<v>[A-Za-z0-9/+]{40})")),
        True, _CLOUD, _check_named, edge=BASE64 + "=",
    ),
    Detector(
        "cloudflare-api-token", "Cloudflare API token", "kw",
        _rx(_named(r"(?i:cloudflare|cf)", r"(?i:token|api[_-]?key)",
                   r"(?P<v>[A-Za-z0-9_-]{37,40})")),
        True,
        "change DNS records, Workers, firewall and cache rules of every zone the token reaches — "
        "enough to redirect or intercept the site's traffic",
        _check_named, edge=TOKEN,
    ),
    Detector(
        "twilio-auth-token", "Twilio auth token", "kw",
        _rx(_named(r"(?i:twilio)", r"(?i:token|secret|auth)", r"(?P<v>[0-9a-f]{32})")),
        True,
        "send messages and place calls billed to the account, read message history and change "
        "phone-number configuration",
        _check_named, edge=ALNUM,
    ),
    Detector(
        "datadog-key", "Datadog API or application key", "kw",
        _rx(_named(r"(?i:datadog|dd)", r"(?i:api|app|application|client)[_.-]?(?i:key|token)",
                   r"(?P<v>[0-9a-f]{40}|[0-9a-f]{32})")),
        True, _OBSERVE, _check_named, edge=ALNUM,
    ),
    Detector(
        "azure-storage-key", "Azure storage or Service Bus key", "kw",
        _rx(_named(r"(?i:azure|storage|account|servicebus)", r"(?i:key)",
                   r"(?P<v>[A-Za-z0-9+/]{86}==)")),
        True,
        "read, change and delete everything in the storage account with the account's own key",
        _check_named, edge=BASE64,
    ),
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"(?P<name>(?i:secret|token|passw|pwd|pass|api[_-]?key|access[_-]?key|private[_-]?key"
            r"|auth|credential|creds|bearer)[\w.-]{0,40})" + _ASSIGN + _QUOTED_OR_BARE),
        False,
        "use the value wherever it is accepted — typically an API, database or signing key — "
        "with whatever access it grants",
        _check_generic,
        generic=True,
    ),
)  # fmt: skip


def _check_literal(m: Match, value: str) -> bool:
    """A literal that the call itself marks as a secret: real unless a variable or placeholder."""
    if is_reference(value):
        return False  # PowerShell or template interpolation: the value comes from elsewhere
    return len(value) <= _MAX_VALUE and plausible_secret(value, bare=False)


def _check_pair(m: Match, value: str) -> bool:
    name = group(m, "name") or ""
    return len(value) <= _MAX_VALUE and secret_like(name) and plausible_secret(value, bare=False)


# Names and values that are not an assignment in code: <add key="db_password" value="..."/> in
# .NET and Spring XML, and "Set `API_TOKEN` to `...`" in documentation.
PAIRS: tuple[Detector, ...] = (
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"""(?:key|name)[ \t]*=[ \t]*["'](?P<name>[\w.:-]{1,80})["'][ \t]+value[ \t]*=[ \t]*"""
            r"""(?:"(?P<dq>[^"\n]{12,})"|'(?P<sq>[^'\n]{12,})')"""),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"`(?P<name>[\w.-]{1,80})`[ \t]+(?:to|=|:|is|as)[ \t]+`(?P<bq>[^`\n]{12,})`"),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    # <password>...</password> (Maven settings.xml, .NET and Java configs)
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"<(?P<name>[\w.:-]{1,80})>(?P<v>[^<\s]{8}[^<\s]*)</[\w.:-]{1,80}>"),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    # define('DB_PASSWORD', '...') (PHP, WordPress's wp-config.php)
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"""define[ \t]*\([ \t]*["'](?P<name>[\w.-]{1,80})["'][ \t]*,[ \t]*"""
            r"""(?:"(?P<dq>[^"\n]{8,})"|'(?P<sq>[^'\n]{8,})')"""),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    # ds.setPassword("...") (Java, C#, Kotlin setters)
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"""\.(?:set|with)_?(?P<name>[A-Za-z]\w{0,60})[ \t]*\([ \t]*"""
            r"""(?:"(?P<dq>[^"\n]{8,})"|'(?P<sq>[^'\n]{8,})')[ \t]*\)"""),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    # ENV DB_PASSWORD value (a Dockerfile's older form, without "=")
    Detector(
        "generic-secret", "secret", "kw",
        _rx(r"""(?m:^)[ \t]*(?i:env)[ \t]+(?P<name>[A-Za-z_][\w.-]{0,80})[ \t]+"""
            r"""(?:"(?P<dq>[^"\n]{8,})"|'(?P<sq>[^'\n]{8,})'|(?P<b>[^\s"'=]{8}[^\s"'=]*))"""
            r"""[ \t]*(?m:$)"""),
        False, NAMED[-1].impact, _check_pair, generic=True,
    ),
    # ConvertTo-SecureString "..." -AsPlainText (PowerShell): the call names what it holds
    Detector(
        "generic-secret", "secret", "pscred",
        _rx(r"""(?i:ConvertTo-SecureString)[ \t]+(?:-String[ \t]+)?"""
            r"""(?:"(?P<dq>[^"\n]{6,})"|'(?P<sq>[^'\n]{6,})')[ \t]+-(?i:AsPlainText)"""),
        False, NAMED[-1].impact, _check_literal, generic=True,
    ),
)  # fmt: skip

DETECTORS: tuple[Detector, ...] = (*PROVIDERS, *CONNECTIONS, *NAMED, *PAIRS)
CONFIDENT: tuple[Detector, ...] = tuple(d for d in DETECTORS if d.confident)
ORDER: dict[str, int] = {}
for _i, _d in enumerate(DETECTORS):
    ORDER.setdefault(_d.kind, _i)
_PLAN: dict[frozenset[str], tuple[Detector, ...]] = {}


def detectors_for(families: frozenset[str]) -> tuple[Detector, ...]:
    """The detectors the prefilter families of a line call for, in table order (memoised)."""
    plan = _PLAN.get(families)
    if plan is None:
        plan = _PLAN[families] = tuple(d for d in DETECTORS if d.family in families)
    return plan
