"""Format-valid credential values, generated at run time from a seeded RNG.

Tests and ``bench/secrets_corpus.py`` build their secrets here so that no real-looking key is
ever committed verbatim (GitHub push protection would, rightly, refuse the push). Formats follow
each provider's published shape: prefix, alphabet, length and, for GitHub and npm tokens, the
CRC32 checksum in base62 that ends the token.
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from collections.abc import Callable

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
BASE32 = string.ascii_uppercase + "234567"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    """``n`` characters drawn from ``alphabet``, with at least one digit and one letter when the
    alphabet has both (a real token of 20+ random characters practically always does)."""
    while True:
        value = "".join(rng.choice(alphabet) for _ in range(n))
        has_digit = any(c.isdigit() for c in alphabet)
        has_alpha = any(c.isalpha() for c in alphabet)
        if (not has_digit or any(c.isdigit() for c in value)) and (
            not has_alpha or any(c.isalpha() for c in value) or n < 8
        ):
            return value


def base62(number: int, width: int = 6) -> str:
    """``number`` in base62 (0-9A-Za-z), left-padded with zeros to ``width``."""
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")


def checksummed(rng: random.Random, prefix: str, body: int = 30) -> str:
    """A GitHub/npm-style token: prefix, random base62 body, CRC32 of the body in base62."""
    entropy = pick(rng, ALNUM, body)
    return prefix + entropy + base62(zlib.crc32(entropy.encode()))


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in a JWT."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    """An HS256 JWT with real-looking claims and a random signature."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {
        "sub": f"user-{rng.randrange(10**6)}",
        "iss": "https://auth.acme-corp.io",
        "exp": 1_900_000_000 + rng.randrange(10**6),
        "scope": "read write",
    }
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def password(rng: random.Random, n: int = 16) -> str:
    """A strong random password (letters, digits and a few symbols)."""
    value = pick(rng, ALNUM, n - 2)
    return value[:5] + rng.choice("!#%*+-") + value[5:] + rng.choice("!#%*")


Generator = Callable[[random.Random], str]

# kind → generator of one value of that kind, as the provider issues it.
TOKENS: dict[str, Generator] = {
    "aws-access-key": lambda r: "AKIA" + pick(r, BASE32, 16),
    "aws-secret-key": lambda r: pick(r, B64, 40),
    "github-pat": lambda r: checksummed(r, "ghp_"),
    "github-app-token": lambda r: checksummed(r, "ghs_"),
    "github-oauth": lambda r: checksummed(r, "gho_"),
    "github-fine-grained": lambda r: "github_pat_" + pick(r, ALNUM, 22) + "_" + pick(r, ALNUM, 59),
    "gitlab-pat": lambda r: "glpat-" + pick(r, URLSAFE, 20),
    "slack-bot": lambda r: (
        f"xoxb-{r.randrange(10**11, 10**12)}-{r.randrange(10**12, 10**13)}-{pick(r, ALNUM, 24)}"
    ),
    "slack-webhook": lambda r: (
        "https://hooks.slack.com/services/T"
        + pick(r, string.ascii_uppercase + string.digits, 8)
        + "/B"
        + pick(r, string.ascii_uppercase + string.digits, 10)
        + "/"
        + pick(r, ALNUM, 24)
    ),
    "stripe-live": lambda r: "sk_live_" + pick(r, ALNUM, 24),
    "stripe-restricted": lambda r: "rk_live_" + pick(r, ALNUM, 24),
    "google-api-key": lambda r: "AIza" + pick(r, URLSAFE, 35),
    "openai-key": lambda r: "sk-proj-" + pick(r, URLSAFE, 58) + "T3BlbkFJ" + pick(r, URLSAFE, 58),
    "anthropic-key": lambda r: "sk-ant-api03-" + pick(r, URLSAFE, 93) + "AA",
    "huggingface-token": lambda r: "hf_" + pick(r, string.ascii_letters, 34),
    "sendgrid-key": lambda r: "SG." + pick(r, URLSAFE, 22) + "." + pick(r, URLSAFE, 43),
    "npm-token": lambda r: checksummed(r, "npm_"),
    "pypi-token": lambda r: "pypi-AgEIcHlwaS5vcmc" + pick(r, URLSAFE, 140),
    "twilio-api-key": lambda r: "SK" + pick(r, HEX, 32),
    "digitalocean-token": lambda r: "dop_v1_" + pick(r, HEX, 64),
    "shopify-token": lambda r: "shpat_" + pick(r, HEX, 32),
    "dockerhub-token": lambda r: "dckr_pat_" + pick(r, URLSAFE, 27),
    "vault-token": lambda r: "hvs." + pick(r, URLSAFE, 92),
    "grafana-token": lambda r: "glsa_" + pick(r, ALNUM, 32) + "_" + pick(r, HEX, 8),
    "sentry-token": lambda r: "sntryu_" + pick(r, HEX, 64),
    "newrelic-key": lambda r: "NRAK-" + pick(r, string.ascii_uppercase + string.digits, 27),
    "rubygems-token": lambda r: "rubygems_" + pick(r, HEX, 48),
    "linear-key": lambda r: "lin_api_" + pick(r, ALNUM, 40),
    "postman-key": lambda r: "PMAK-" + pick(r, HEX, 24) + "-" + pick(r, HEX, 34),
    "age-secret-key": lambda r: "AGE-SECRET-KEY-1" + pick(r, BECH32, 58),
    "groq-key": lambda r: "gsk_" + pick(r, ALNUM, 52),
    "azure-ad-secret": lambda r: (
        pick(r, ALNUM, 3) + str(r.randrange(10)) + "Q~" + pick(r, URLSAFE + ".~", 34)
    ),
    "azure-storage-key": lambda r: pick(r, B64, 86) + "==",
    "datadog-api-key": lambda r: pick(r, HEX, 32),
    "datadog-app-key": lambda r: pick(r, HEX, 40),
    "mailgun-key": lambda r: "key-" + pick(r, HEX, 32),
    "mailchimp-key": lambda r: pick(r, HEX, 32) + f"-us{r.randrange(1, 21)}",
    "telegram-token": lambda r: f"{r.randrange(10**8, 10**10)}:AA" + pick(r, URLSAFE, 33),
    "discord-webhook": lambda r: (
        f"https://discord.com/api/webhooks/{r.randrange(10**17, 10**18)}/" + pick(r, URLSAFE, 68)
    ),
    "jwt": jwt,
    "password": password,
    "cloudflare-token": lambda r: pick(r, URLSAFE, 40),
    "twilio-auth-token": lambda r: pick(r, HEX, 32),
    "google-refresh-token": lambda r: "1//0" + pick(r, URLSAFE, 99),
    "google-access-token": lambda r: "ya29.a0" + pick(r, URLSAFE, 150),
    "facebook-token": lambda r: "EAAB" + pick(r, ALNUM, 180),
    "twitter-bearer": lambda r: "A" * 22 + pick(r, ALNUM, 20) + "%3D" + pick(r, ALNUM, 50),
    "tailscale-key": lambda r: "tskey-auth-" + pick(r, ALNUM, 17) + "-" + pick(r, ALNUM, 33),
    "airtable-token": lambda r: "pat" + pick(r, ALNUM, 14) + "." + pick(r, HEX, 64),
    "mapbox-token": lambda r: "sk.eyJ1Ijoi" + pick(r, ALNUM, 60) + "." + pick(r, URLSAFE, 22),
    "dropbox-token": lambda r: "sl." + pick(r, URLSAFE, 138),
    "dynatrace-token": lambda r: (
        "dt0c01." + pick(r, BASE32, 24) + "." + pick(r, string.ascii_uppercase + string.digits, 64)
    ),
    "prefect-key": lambda r: "pnu_" + pick(r, ALNUM, 36),
    "teams-webhook": lambda r: (
        "https://acme.webhook.office.com/webhookb2/" + _uuid(r) + "@" + _uuid(r)
        + "/IncomingWebhook/" + pick(r, HEX, 32) + "/" + _uuid(r)
    ),
    "adobe-secret": lambda r: "p8e-" + pick(r, ALNUM, 32),
    "flutterwave-key": lambda r: "FLWSECK-" + pick(r, HEX, 32) + "-X",
    "duffel-token": lambda r: "duffel_live_" + pick(r, URLSAFE, 43),
    "easypost-key": lambda r: "EZAK" + pick(r, ALNUM, 54),
    "shippo-token": lambda r: "shippo_live_" + pick(r, HEX, 40),
    "typeform-token": lambda r: "tfp_" + pick(r, URLSAFE, 59),
    "readme-key": lambda r: "rdme_" + pick(r, LOWER_ALNUM, 70),
    "infracost-key": lambda r: "ico-" + pick(r, ALNUM, 32),
    "scalingo-token": lambda r: "tk-us-" + pick(r, URLSAFE, 48),
    "frameio-token": lambda r: "fio-u-" + pick(r, URLSAFE, 64),
    "clojars-token": lambda r: "CLOJARS_" + pick(r, LOWER_ALNUM, 60),
    "harness-token": lambda r: (
        "pat." + pick(r, URLSAFE, 22) + "." + pick(r, HEX, 24) + "." + pick(r, ALNUM, 20)
    ),
    "cloudflare-origin-ca-key": lambda r: "v1.0-" + pick(r, HEX, 24) + "-" + pick(r, HEX, 146),
    "okta-token": lambda r: "SSWS 00" + pick(r, URLSAFE, 40),
    "contentful-token": lambda r: "CFPAT-" + pick(r, URLSAFE, 43),
    "sourcegraph-token": lambda r: "sgp_" + pick(r, HEX, 16) + "_" + pick(r, HEX, 40),
    "buildkite-token": lambda r: "bkua_" + pick(r, HEX, 40),
    "circleci-token": lambda r: "CCIPAT_" + pick(r, ALNUM, 22) + "_" + pick(r, HEX, 40),
    "netlify-token": lambda r: "nfp_" + pick(r, ALNUM, 36),
    "figma-token": lambda r: "figd_" + pick(r, URLSAFE, 40),
    "langsmith-key": lambda r: "lsv2_pt_" + pick(r, HEX, 32) + "_" + pick(r, HEX, 10),
    "pinecone-key": lambda r: "pcsk_" + pick(r, ALNUM, 6) + "_" + pick(r, ALNUM, 64),
    "resend-key": lambda r: "re_" + pick(r, ALNUM, 8) + "_" + pick(r, ALNUM, 24),
    "neon-key": lambda r: "napi_" + pick(r, LOWER_ALNUM, 64),
    "onepassword-token": lambda r: "ops_eyJzaWduSW5BZGRyZXNzIjoi" + pick(r, B64, 300),
    "cerebras-key": lambda r: "csk-" + pick(r, LOWER_ALNUM, 48),
    "fireworks-key": lambda r: "fw_" + pick(r, ALNUM, 24),
    "plaid-token": lambda r: "access-production-" + _uuid(r),
    "hubspot-token": lambda r: "pat-na1-" + _uuid(r),
    "azure-sas-url": lambda r: (
        "https://acme.blob.core.windows.net/backups?sv=2022-11-02&ss=b&srt=sco&sp=rwdlac"
        "&se=2027-01-01T00:00:00Z&spr=https&sig="
        + base64.b64encode(r.randbytes(32)).decode().replace("+", "%2B").replace("/", "%2F")
        .replace("=", "%3D")
    ),
    "braintree-token": lambda r: (
        "access_token$production$" + pick(r, LOWER_ALNUM, 16) + "$" + pick(r, HEX, 32)
    ),
    "firebase-fcm-key": lambda r: "AAAA" + pick(r, URLSAFE, 7) + ":APA91b" + pick(r, URLSAFE, 134),
    "jfrog-token": lambda r: "AKCp" + pick(r, ALNUM, 69),
    "bitbucket-app-password": lambda r: "ATBB" + pick(r, ALNUM, 32),
    "notion-legacy-token": lambda r: "secret_" + pick(r, ALNUM, 43),
    "crates-io-token": lambda r: "cio" + pick(r, ALNUM, 32),
    "discord-bot-token": lambda r: (
        base64.b64encode(str(r.randrange(10**17, 10**18)).encode()).decode().rstrip("=")
        + "." + pick(r, URLSAFE, 6) + "." + pick(r, URLSAFE, 38)
    ),
}  # fmt: skip


def _uuid(rng: random.Random) -> str:
    h = pick(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def token(kind: str, seed: int = 0) -> str:
    """One value of ``kind`` from a generator seeded with ``seed``."""
    return TOKENS[kind](random.Random(f"{kind}:{seed}"))


def bad_checksum(value: str) -> str:
    """A GitHub/npm-style token whose checksum no longer matches (a look-alike)."""
    last = value[-1]
    return value[:-1] + ("A" if last != "A" else "B")


# --- private keys --------------------------------------------------------------------------------


def _wrap(body: str, width: int = 64) -> list[str]:
    return [body[i : i + width] for i in range(0, len(body), width)]


def pem_key(rng: random.Random, label: str = "RSA PRIVATE KEY", size: int = 1190) -> str:
    """A PEM block of random base64 (the shape of a real key, not a usable one)."""
    lead = {"RSA PRIVATE KEY": "MIIEow", "EC PRIVATE KEY": "MHcCAQEE", "PRIVATE KEY": "MIIEvQ"}
    body = lead.get(label, "MIIB") + pick(rng, B64, size)
    return "\n".join([f"-----BEGIN {label}-----", *_wrap(body), f"-----END {label}-----"])


def putty_key(rng: random.Random) -> str:
    """A PuTTY (.ppk, version 3) ed25519 key file: public lines, private lines and the MAC."""
    public = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + rng.randbytes(32))
    private = base64.b64encode(b"\x00\x00\x00\x20" + rng.randbytes(32)).decode()
    return "\n".join([
        "PuTTY-User-Key-File-3: ssh-ed25519", "Encryption: none", "Comment: deploy@ci",
        "Public-Lines: 2", *_wrap(public.decode()), "Private-Lines: 1", private,
        "Private-MAC: " + pick(rng, HEX, 64),
    ])  # fmt: skip


def openssh_key(rng: random.Random) -> str:
    """An unencrypted OpenSSH private key: its body starts openssh-key-v1 and holds AAAAAA runs."""
    raw = (
        b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
        b"\x00\x00\x00\x01\x00\x00\x00\x33\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
        + rng.randbytes(32)
        + b"\x00\x00\x00\x88"
        + rng.randbytes(8)
        + b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"
        + rng.randbytes(96)
        + b"\x00\x00\x00\x00\x01\x02\x03\x04\x05"
    )
    body = base64.b64encode(raw).decode()
    lines = _wrap(body, 70)
    return "\n".join(
        ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----"]
    )
