"""Provider credential formats: prefixed tokens whose shape alone identifies them.

Each entry follows the provider's published format (prefix, alphabet, length) and, where the
format carries one, its checksum: GitHub and npm tokens end in the CRC32 of their random part in
base62, so a look-alike with a wrong last six characters is rejected. Families name the
prefilter anchor (``rules.ANCHORS``) that makes a line worth checking.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from bot.redact.detector import (
    ALNUM,
    BASE64,
    TOKEN,
    WORD,
    Check,
    Detector,
    check_letters,
    check_random,
    check_token,
    is_public_example,
)
from bot.redact.linear import Match
from bot.redact.linear import compile as _rx
from bot.redact.values import is_reference

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def crc32_base62_ok(token: str, prefix_len: int) -> bool:
    """Whether a GitHub/npm-style token's last 6 characters are the CRC32 of its random part."""
    body = token[prefix_len:]
    if len(body) != 36:
        return False
    number = 0
    for c in body[30:]:
        index = _BASE62.find(c)
        if index < 0:
            return False
        number = number * 62 + index
    return zlib.crc32(body[:30].encode()) == number


def _check_checksummed(m: Match, value: str) -> bool:
    """36 characters after the prefix must carry a valid checksum; other lengths (GitHub allows
    longer tokens) must at least look random."""
    prefix = value.index("_") + 1
    if len(value) - prefix == 36:
        return crc32_base62_ok(value, prefix) and check_token(m, value)
    return check_random(m, value)


def _unpadded_b64(text: str, *, urlsafe: bool = False, validate: bool = False) -> bytes | None:
    """``text`` decoded from base64 that may have lost its ``=`` padding; None if it is not."""
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=validate)
    except (binascii.Error, ValueError):
        return None


def _b64json(part: str) -> Any:
    raw = _unpadded_b64(part, urlsafe=True)
    try:
        return None if raw is None else json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


_CLAIMS = frozenset(("sub", "iss", "aud", "exp", "iat", "nbf", "jti", "scope", "email", "role"))


def check_jwt(m: Match, value: str) -> bool:
    """A JWT with a real header and claims, not jwt.io's published sample."""
    parts = value.split(".")
    if len(parts) != 3 or is_public_example(value):
        return False
    header, claims = _b64json(parts[0]), _b64json(parts[1])
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return False
    return bool(_CLAIMS.intersection(claims)) or len(claims) >= 2


def _check_twitter(m: Match, value: str) -> bool:
    """An app-only bearer token: 21 "A"s, then a URL-encoded random part (it always holds "%")."""
    return "%" in value and check_random(m, value[21:].replace("%", ""))


def _check_netrc(m: Match, value: str) -> bool:
    """A .netrc password: a real value, not a placeholder or an environment reference."""
    return not is_reference(value) and check_token(m, value)


def _check_encoded_key(m: Match, value: str) -> bool:
    """base64 of a PEM block whose label is a private key (certificates are public)."""
    head = _unpadded_b64(value[:120])
    return head is not None and b"PRIVATE KEY" in head.split(b"\n", 1)[0] and check_token(m, value)


def _check_sas(m: Match, value: str) -> bool:
    """A SAS signature: base64 of an HMAC-SHA256 (32 bytes), usually URL-encoded."""
    raw = value.replace("%2B", "+").replace("%2F", "/").replace("%3D", "=")
    return len(raw.rstrip("=")) >= 40 and check_random(m, raw)


def _check_discord(m: Match, value: str) -> bool:
    """A bot token: the base64 of the bot's numeric id, a timestamp and an HMAC."""
    ident = _unpadded_b64(value.split(".", 1)[0], validate=True)
    return (
        ident is not None and ident.isdigit() and 17 <= len(ident) <= 20 and check_random(m, value)
    )


def _not_example(check: Check) -> Check:
    def checked(m: Match, value: str) -> bool:
        return check(m, value) and not is_public_example(value)

    return checked


_CLOUD = (
    "call the cloud provider's APIs as the credential's identity — read or delete data, start "
    "machines for crypto-mining, or escalate through the permissions attached to it"
)
_FORGE = (
    "act as the token's owner: read private repositories, push code, tamper with CI pipelines "
    "and releases, and harvest the further secrets those pipelines hold"
)
_MODEL = "run model requests billed to the organisation and exhaust its budget or rate limits"
_PACKAGE = "publish a malicious version of every package the token can write to, reaching all users"
_CHAT = (
    "read channels and messages, post as the app or user, and collect further credentials "
    "shared in the workspace"
)
_PAY = (
    "create charges, payouts and refunds, read customer and payment data, and change the "
    "account's settings"
)
_SAAS = "use the service's API with the token's access: read and change the account's data"
_INFRA = (
    "reach the infrastructure the token controls: secrets, deployments, DNS or databases, enough "
    "to take over the services running there"
)
_SOCIAL = (
    "post, read messages and act as the account or page through the platform's API, and reach "
    "its followers with whatever it posts"
)
_OBSERVE = (
    "read the organisation's logs, traces and dashboards (which often hold further secrets and "
    "personal data) and change or silence its alerting"
)


def _tok(
    kind: str,
    label: str,
    family: str,
    pattern: str,
    critical: bool,
    impact: str,
    check: Check = check_token,
    edge: str = TOKEN,
) -> Detector:
    return Detector(
        kind, label, family, _rx(pattern if "(?P<v>" in pattern else f"(?P<v>{pattern})"),
        critical, impact,
        _not_example(check), edge=edge, confident=True,
    )  # fmt: skip


PROVIDERS: tuple[Detector, ...] = (
    _tok("aws-access-key", "AWS access key", "aws",
         r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}", True, _CLOUD, edge=ALNUM),
    _tok("github-token", "GitHub token", "github",
         r"gh[pousr]_[A-Za-z0-9]{36,251}", True, _FORGE, _check_checksummed, WORD),
    _tok("github-token", "GitHub token", "github",
         r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}", True, _FORGE, edge=WORD),
    _tok("gitlab-token", "GitLab access token", "gitlab",
         r"(?:glpat|gldt|glrt|glsoat|glft|glimt|glcbt|glffct)-[0-9A-Za-z_-]{20,300}"
         r"(?:\.[0-9a-z]{2}[0-9a-z]{7})?|glptt-[0-9a-f]{40}|gloas-[0-9A-Za-z_-]{64}"
         r"|glagent-[0-9A-Za-z_-]{50}|GR1348941[0-9A-Za-z_-]{20}", True, _FORGE, check_random),
    _tok("slack-token", "Slack token", "slack",
         r"xox[abposr]-[A-Za-z0-9-]{10,250}|xoxe\.xox[bp]-[A-Za-z0-9-]{100,250}"
         r"|xapp-[0-9]-[A-Z0-9]+-[0-9]+-[a-z0-9]+", True, _CHAT, check_random),
    _tok("slack-webhook", "Slack webhook URL", "slack",
         r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9+/_-]{16,200})", False,
         "post arbitrary messages, including convincing phishing links, into the channel",
         edge=""),
    _tok("stripe-key", "Stripe live secret key", "stripe",
         r"(?:sk|rk)_(?:live|prod)_[0-9A-Za-z]{20,247}|whsec_[0-9A-Za-z]{32,64}", True, _PAY,
         edge=ALNUM),
    _tok("google-api-key", "Google API key", "google", r"AIza[0-9A-Za-z_-]{35}", False,
         "run up usage billed to the project on every Google API the key is not restricted "
         "from, and read whatever data those APIs expose"),
    _tok("google-oauth-secret", "Google OAuth client secret", "google",
         r"GOCSPX-[0-9A-Za-z_-]{28}", True, _CLOUD),
    _tok("google-oauth-token", "Google OAuth token", "google",
         r"ya29\.[0-9A-Za-z_-]{30,400}|1//0[0-9A-Za-z_-]{40,300}", True, _CLOUD, check_random),
    _tok("anthropic-key", "Anthropic API key", "sk",
         r"sk-ant-(?:api|admin|oat)[0-9]{2}-[A-Za-z0-9_-]{32,250}", True, _MODEL),
    _tok("openai-key", "OpenAI API key", "sk",
         r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,250}|sk-[A-Za-z0-9]{32,250}"
         r"|sk-or-v1-[0-9a-f]{64}", True, _MODEL, check_random),
    _tok("huggingface-token", "Hugging Face token", "ai",
         r"(?:hf_|api_org_)[A-Za-z]{34}", True, _MODEL, check_letters, WORD),
    _tok("groq-key", "Groq API key", "ai", r"gsk_[A-Za-z0-9]{52}", True, _MODEL, check_random),
    _tok("perplexity-key", "Perplexity API key", "ai", r"pplx-[A-Za-z0-9]{48}", True, _MODEL,
         check_random),
    _tok("replicate-token", "Replicate API token", "ai", r"r8_[A-Za-z0-9]{37}", True, _MODEL,
         check_random),
    _tok("xai-key", "xAI API key", "ai", r"xai-[A-Za-z0-9]{80}", True, _MODEL, check_random),
    _tok("sendgrid-key", "SendGrid API key", "sendgrid",
         r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}", True,
         "send e-mail from the organisation's verified domains — phishing that passes SPF and "
         "DKIM — and read its contact lists"),
    _tok("npm-token", "npm access token", "registry", r"npm_[A-Za-z0-9]{36}", True, _PACKAGE,
         _check_checksummed, WORD),
    _tok("pypi-token", "PyPI API token", "registry",
         r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,}", True, _PACKAGE),
    _tok("rubygems-token", "RubyGems API key", "registry", r"rubygems_[0-9a-f]{48}", True,
         _PACKAGE),
    _tok("dockerhub-token", "Docker Hub access token", "registry",
         r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,32}", True, _PACKAGE, check_random),
    _tok("nuget-key", "NuGet API key", "registry", r"oy2[a-z0-9]{43}", True, _PACKAGE,
         check_random),
    _tok("twilio-api-key", "Twilio API key", "twilio", r"SK[0-9a-f]{32}", False,
         "together with the key's secret, send messages and place calls billed to the account",
         edge=ALNUM),
    _tok("jwt", "JSON Web Token", "jwt",
         r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", False,
         "replay the token against the service that issued it and act as its subject until it "
         "expires or the signing key is rotated", check_jwt),
    _tok("digitalocean-token", "DigitalOcean token", "cloud", r"do[opr]_v1_[0-9a-f]{64}", True,
         _INFRA),
    _tok("vault-token", "HashiCorp Vault token", "cloud",
         r"hv[sb]\.[A-Za-z0-9_-]{90,300}", True, _INFRA, check_random),
    _tok("terraform-token", "Terraform Cloud token", "cloud",
         r"[a-z0-9]{14}\.atlasv1\.[a-z0-9_=-]{60,70}", True, _INFRA, check_random),
    _tok("alibaba-access-key", "Alibaba Cloud access key", "cloud", r"LTAI[A-Za-z0-9]{20}", True,
         _CLOUD, check_random),
    _tok("pulumi-token", "Pulumi access token", "cloud", r"pul-[0-9a-f]{40}", True, _INFRA),
    _tok("supabase-token", "Supabase access token", "cloud", r"sbp_[0-9a-f]{40}", True, _INFRA),
    _tok("planetscale-token", "PlanetScale credential", "cloud",
         r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,64}", True, _INFRA, check_random),
    _tok("flyio-token", "Fly.io token", "cloud", r"fo1_[A-Za-z0-9_-]{43}", True, _INFRA,
         check_random),
    _tok("heroku-key", "Heroku API key", "cloud", r"HRKU-AA[0-9A-Za-z_-]{58}", True, _INFRA,
         check_random),
    _tok("doppler-token", "Doppler token", "cloud", r"dp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}",
         True, _INFRA, check_random),
    _tok("databricks-token", "Databricks token", "cloud", r"dapi[0-9a-f]{32}(?:-[0-9])?", True,
         _INFRA, edge=ALNUM),
    _tok("age-secret-key", "age secret key", "cloud",
         r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", True,
         "decrypt every file and secret encrypted to the matching age recipient"),
    _tok("shopify-token", "Shopify access token", "saas", r"shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}",
         True, _PAY),
    _tok("grafana-token", "Grafana token", "saas",
         r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,400}={0,2}", True, _OBSERVE,
         check_random),
    _tok("sentry-token", "Sentry auth token", "saas",
         r"sntryu_[0-9a-f]{64}|sntrys_eyJ[A-Za-z0-9+/=_]{60,400}", True, _OBSERVE),
    _tok("newrelic-key", "New Relic key", "saas", r"NR(?:AK|II|JS)-[A-Za-z0-9]{19,32}", True,
         _OBSERVE, check_random),
    _tok("linear-key", "Linear API key", "saas", r"lin_api_[A-Za-z0-9]{40}", True, _SAAS,
         check_random),
    _tok("postman-key", "Postman API key", "saas", r"PMAK-[0-9a-f]{24}-[0-9a-f]{34}", True,
         _SAAS),
    _tok("atlassian-token", "Atlassian API token", "saas", r"ATATT3[A-Za-z0-9_=-]{180,190}",
         True, _SAAS, check_random),
    _tok("notion-token", "Notion integration token", "saas", r"ntn_[0-9]{11}[A-Za-z0-9]{35}",
         True, _SAAS),
    _tok("brevo-key", "Brevo (Sendinblue) API key", "saas",
         r"xkeysib-[0-9a-f]{64}-[A-Za-z0-9]{16}", True, _SAAS),
    _tok("square-token", "Square access token", "saas",
         r"sq0(?:atp|csp)-[0-9A-Za-z_-]{22,60}|EAAA[0-9A-Za-z_-]{60}", True, _PAY, check_random),
    _tok("razorpay-key", "Razorpay live key", "saas", r"rzp_live_[A-Za-z0-9]{14}", True, _PAY,
         check_random),
    _tok("mailgun-key", "Mailgun API key", "saas", r"key-[0-9a-f]{32}", True, _SAAS,
         check_random, ALNUM),
    _tok("mailchimp-key", "Mailchimp API key", "saas", r"[0-9a-f]{32}-us[0-9]{1,2}", True,
         _SAAS, check_random, ALNUM),
    _tok("discord-webhook", "Discord webhook URL", "chat",
         r"discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/(?P<v>[A-Za-z0-9_-]{60,70})", False,
         "post arbitrary messages, including convincing phishing links, into the channel",
         edge=""),
    _tok("telegram-bot-token", "Telegram bot token", "chat",
         r"[0-9]{8,10}:A[A-Za-z0-9_-]{34}", True, _CHAT, check_random, edge=TOKEN + ":"),
    _tok("facebook-token", "Facebook access token", "social", r"EAA[B-Z][0-9A-Za-z]{80,300}", True,
         _SOCIAL, check_random, ALNUM),
    _tok("twitter-bearer-token", "X (Twitter) bearer token", "social",
         r"A{21}[0-9A-Za-z%]{60,160}", True, _SOCIAL, _check_twitter, ALNUM + "%"),
    _tok("mapbox-token", "Mapbox secret token", "more",
         r"sk\.eyJ[A-Za-z0-9_-]{50,120}\.[A-Za-z0-9_-]{20,40}", True, _SAAS, check_random),
    _tok("dropbox-token", "Dropbox access token", "more", r"sl\.[A-Za-z0-9_-]{130,160}", True,
         _SAAS, check_random),
    _tok("dynatrace-token", "Dynatrace API token", "more", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}",
         True, _OBSERVE, check_random),
    _tok("prefect-key", "Prefect API key", "more", r"pnu_[A-Za-z0-9]{36}", True, _INFRA,
         check_random),
    _tok("teams-webhook", "Microsoft Teams webhook URL", "more",
         r"webhook\.office\.com/webhookb2/(?P<v>[0-9a-f-]{36}@[0-9a-f-]{36}/IncomingWebhook/"
         r"[0-9a-f]{32}/[0-9a-f-]{36})", False,
         "post arbitrary messages, including convincing phishing links, into the channel",
         edge=""),
    _tok("adobe-secret", "Adobe client secret", "more", r"p8e-[A-Za-z0-9_-]{32}", True, _SAAS,
         check_random),
    _tok("flutterwave-key", "Flutterwave secret key", "more",
         r"FLWSECK(?:_TEST)?-[0-9a-h]{32}-X", True, _PAY, check_random),
    _tok("duffel-token", "Duffel access token", "more", r"duffel_(?:test|live)_[A-Za-z0-9_=-]{43}",
         True, _PAY, check_random),
    _tok("easypost-key", "EasyPost API key", "more", r"EZAK[A-Za-z0-9]{54}", True, _SAAS,
         check_random),
    _tok("shippo-token", "Shippo API token", "more", r"shippo_(?:live|test)_[0-9a-f]{40}", True,
         _SAAS, check_random),
    _tok("typeform-token", "Typeform personal token", "more", r"tfp_[A-Za-z0-9_.=-]{59}", True,
         _SAAS, check_random),
    _tok("readme-key", "ReadMe API key", "more", r"rdme_[a-z0-9]{70}", True, _SAAS, check_random),
    _tok("infracost-key", "Infracost API key", "more", r"ico-[A-Za-z0-9]{32}", True, _INFRA,
         check_random),
    _tok("scalingo-token", "Scalingo API token", "more", r"tk-us-[A-Za-z0-9_-]{48}", True,
         _INFRA, check_random),
    _tok("frameio-token", "Frame.io API token", "more", r"fio-u-[A-Za-z0-9_=-]{64}", True, _SAAS,
         check_random),
    _tok("clojars-token", "Clojars deploy token", "more", r"CLOJARS_[a-z0-9]{60}", True,
         _PACKAGE, check_random),
    _tok("harness-token", "Harness access token", "more",
         r"pat\.[A-Za-z0-9_-]{22}\.[0-9a-f]{24}\.[A-Za-z0-9]{20}", True, _INFRA, check_random),
    _tok("cloudflare-origin-ca-key", "Cloudflare Origin CA key", "more",
         r"v1\.0-[0-9a-f]{24}-[0-9a-f]{146}", True, _INFRA, check_random),
    _tok("okta-token", "Okta API token", "more", r"SSWS[ \t]+(?P<v>00[A-Za-z0-9_-]{40})", True,
         _INFRA, check_random),
    _tok("contentful-token", "Contentful management token", "more", r"CFPAT-[A-Za-z0-9_-]{43}",
         True, _SAAS, check_random),
    _tok("sourcegraph-token", "Sourcegraph access token", "more",
         r"sgp_[0-9a-f]{16,40}_?[0-9a-f]{0,40}", True, _FORGE, check_random),
    _tok("buildkite-token", "Buildkite API token", "more", r"bkua_[0-9a-f]{40}", True, _FORGE,
         check_random),
    _tok("circleci-token", "CircleCI personal token", "more",
         r"CCIPAT_[A-Za-z0-9]{22}_[0-9a-f]{40}", True, _FORGE, check_random),
    _tok("netlify-token", "Netlify access token", "more", r"nfp_[A-Za-z0-9]{36}", True, _INFRA,
         check_random),
    _tok("figma-token", "Figma access token", "more", r"figd_[A-Za-z0-9_-]{40}", True, _SAAS,
         check_random),
    _tok("langsmith-key", "LangSmith API key", "more", r"lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}",
         True, _MODEL, check_random),
    _tok("pinecone-key", "Pinecone API key", "more", r"pcsk_[A-Za-z0-9]{4,8}_[A-Za-z0-9]{40,80}",
         True, _SAAS, check_random),
    _tok("resend-key", "Resend API key", "more", r"re_[A-Za-z0-9]{8}_[A-Za-z0-9]{24}", True,
         _SAAS, check_random),
    _tok("neon-key", "Neon API key", "more", r"napi_[a-z0-9]{64}", True, _INFRA, check_random),
    _tok("onepassword-token", "1Password service account token", "more",
         r"ops_eyJ[A-Za-z0-9+/=_-]{100}[A-Za-z0-9+/=_-]*", True,
         "read every vault item the service account can reach: the organisation's other "
         "credentials", check_random),
    _tok("cerebras-key", "Cerebras API key", "more", r"csk-[a-z0-9]{48}", True, _MODEL,
         check_random),
    _tok("fireworks-key", "Fireworks AI API key", "more", r"fw_[A-Za-z0-9]{24}", True, _MODEL,
         check_random),
    _tok("plaid-token", "Plaid access token", "more",
         r"access-(?:sandbox|development|production)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
         r"[0-9a-f]{4}-[0-9a-f]{12}", True, _PAY, check_random),
    _tok("hubspot-token", "HubSpot private app token", "more",
         r"pat-(?:na|eu)[0-9]-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
         True, _SAAS, check_random),
    _tok("azure-sas-token", "Azure shared access signature", "more2",
         r"[?&]sv=[0-9]{4}-[0-9]{2}-[0-9]{2}&[^\s\"'<>]*?[?&]sig=(?P<v>[A-Za-z0-9%+/=]{30}[A-Za-z0-9%+/=]*)",
         True, _CLOUD, _check_sas, edge=""),
    _tok("azure-sas-token", "Azure shared access signature", "more2",
         r"[?&]sig=(?P<v>[A-Za-z0-9%+/]{40}[A-Za-z0-9%+/]*=?=?)[^\s\"'<>]*?[?&]sv=[0-9]{4}-",
         True, _CLOUD, _check_sas, edge=""),
    _tok("braintree-token", "Braintree access token", "more2",
         r"access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}", True, _PAY, check_random),
    _tok("firebase-fcm-key", "Firebase Cloud Messaging server key", "more2",
         r"AAAA[A-Za-z0-9_-]{7}:APA91[A-Za-z0-9_-]{130,140}", True,
         "send push notifications to every installation of the organisation's apps", check_random),
    _tok("jfrog-token", "JFrog Artifactory token", "more2",
         r"AKCp[A-Za-z0-9]{69}|cmVmdGtuOjAxOj[A-Za-z0-9]{50,80}", True, _PACKAGE, check_random),
    _tok("bitbucket-app-password", "Bitbucket app password", "more2",
         r"ATBB[A-Za-z0-9_=.-]{32}", True, _FORGE, check_random),
    _tok("notion-token", "Notion integration token", "more2", r"secret_[A-Za-z0-9]{43}", True,
         _SAAS, check_random, WORD),
    _tok("crates-io-token", "crates.io API token", "more2", r"cio[A-Za-z0-9]{32}", True,
         _PACKAGE, check_random, ALNUM),
    _tok("discord-bot-token", "Discord bot token", "more2",
         r"[MNO][A-Za-z0-9]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}", True, _CHAT,
         _check_discord, TOKEN + "."),
    _tok("tailscale-key", "Tailscale key", "net",
         r"tskey-(?:auth|api|client|webhook|scim)-[0-9A-Za-z]{8,40}-[0-9A-Za-z]{20,64}", True,
         "join machines to the tailnet or manage it through its API: a way into the private "
         "network", check_random),
    _tok("airtable-token", "Airtable personal access token", "net",
         r"pat[0-9A-Za-z]{14}\.[0-9a-f]{64}", True, _SAAS, check_random, ALNUM),
    _tok("netrc-password", "Password in a .netrc entry", "net",
         r"(?i:machine)[ \t]+\S+[ \t]+(?i:login)[ \t]+\S+[ \t]+(?i:password)[ \t]+"
         r"(?P<v>[^\s\"']{6,200})", True,
         "log in to the named host as the entry's user: curl, git and ftp read .netrc for it",
         _check_netrc, edge=""),
    _tok("encoded-private-key", "Private key (base64-encoded PEM)", "pkey64",
         r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{60,999}[A-Za-z0-9+/]*={0,2}", True,
         "decrypt traffic or sign as the key's owner: a Kubernetes Secret, Helm value or CI "
         "variable holding a key in base64 is as exposed as the PEM file itself",
         _check_encoded_key, BASE64),
    _tok("azure-ad-secret", "Azure AD client secret", "azure",
         r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}", True, _CLOUD, check_random,
         edge=ALNUM + "_~.-"),
)  # fmt: skip
