"""Each detector family on a true value and on look-alikes; public examples, allow comments, tests.

Values come from ``tests/secret_values.py`` (generated at run time, never committed).
"""

from __future__ import annotations

import base64
import json
import random

import pytest

from bot.redact import rules
from bot.redact.providers import crc32_base62_ok
from bot.redact.redactor import redact_text, scan_text
from bot.redact.rules import secret_like
from tests import secret_values as sv

R = random.Random(5)

# (expected kind, line): one true value per family, in the syntax it is usually found in.
TRUE = [
    ("aws-access-key", f"aws_access_key_id = {sv.token('aws-access-key')}"),
    ("aws-secret-key", f'AWS_SECRET_ACCESS_KEY = "{sv.token("aws-secret-key")}"'),
    ("github-token", f"GH = '{sv.token('github-pat')}'"),
    ("github-token", f"token: {sv.token('github-fine-grained')}"),
    ("gitlab-token", f"GITLAB={sv.token('gitlab-pat')}"),
    ("slack-token", f'client = WebClient(token="{sv.token("slack-bot")}")'),
    ("slack-webhook", f"url: {sv.token('slack-webhook')}"),
    ("stripe-key", f"stripe.api_key = '{sv.token('stripe-live')}'"),
    ("google-api-key", f'key="{sv.token("google-api-key")}"'),
    ("openai-key", f"OPENAI_API_KEY={sv.token('openai-key')}"),
    ("anthropic-key", f"ANTHROPIC_API_KEY={sv.token('anthropic-key')}"),
    ("huggingface-token", f"HF_TOKEN={sv.token('huggingface-token')}"),
    ("groq-key", f"GROQ={sv.token('groq-key')}"),
    ("sendgrid-key", f"SENDGRID={sv.token('sendgrid-key')}"),
    ("npm-token", f"//registry.npmjs.org/:_authToken={sv.token('npm-token')}"),
    ("pypi-token", f"password = {sv.token('pypi-token')}"),
    ("rubygems-token", f"GEM_HOST_API_KEY={sv.token('rubygems-token')}"),
    ("dockerhub-token", f"DOCKER_PAT={sv.token('dockerhub-token')}"),
    ("twilio-api-key", f'Client("{sv.token("twilio-api-key")}", secret)'),
    ("twilio-auth-token", f'TWILIO_AUTH_TOKEN = "{sv.token("twilio-auth-token")}"'),
    ("jwt", f"Authorization: Bearer {sv.token('jwt')}"),
    ("digitalocean-token", f"DO={sv.token('digitalocean-token')}"),
    ("vault-token", f"VAULT_TOKEN={sv.token('vault-token')}"),
    ("shopify-token", f"SHOPIFY={sv.token('shopify-token')}"),
    ("grafana-token", f"GRAFANA={sv.token('grafana-token')}"),
    ("sentry-token", f"SENTRY={sv.token('sentry-token')}"),
    ("newrelic-key", f"NEW_RELIC={sv.token('newrelic-key')}"),
    ("linear-key", f"LINEAR={sv.token('linear-key')}"),
    ("postman-key", f"POSTMAN={sv.token('postman-key')}"),
    ("age-secret-key", f"{sv.token('age-secret-key')}"),
    ("azure-ad-secret", f"AZURE_CLIENT_SECRET={sv.token('azure-ad-secret')}"),
    ("datadog-key", f"DD_API_KEY={sv.token('datadog-api-key')}"),
    ("datadog-key", f'datadog_app_key: "{sv.token("datadog-app-key")}"'),
    ("cloudflare-api-token", f'CLOUDFLARE_API_TOKEN = "{sv.token("cloudflare-token")}"'),
    ("mailgun-key", f"MAILGUN={sv.token('mailgun-key')}"),
    ("telegram-bot-token", f"BOT={sv.token('telegram-token')}"),
    ("discord-webhook", f"hook = '{sv.token('discord-webhook')}'"),
    ("azure-storage-key",
     f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={sv.token('azure-storage-key')};"),
    ("url-password", "url: mysql2://deploy:Qx7pLm2vZk9w@mysql.prod/shop"),
    ("dsn-password", 'dsn := "orders:Qx7pLm2vZk9w@tcp(10.0.0.5:3306)/orders"'),
    ("pdo-password", "$pdo = new PDO('mysql:host=db;dbname=shop', 'shop', 'Qx7pLm2vZk9w');"),
    ("cli-password", "curl -u admin:Qx7pLm2vZk9w https://nexus.acme.io/"),
    ("generic-secret", '<add key="db_password" value="rhXOT+CXxHEpT73*" />'),
    ("generic-secret", 'DB_PASSWORD = "Qx7pLm2vZk9wRt"'),
    ("google-oauth-token", f'creds = {{"refresh_token": "{sv.token("google-refresh-token")}"}}'),
    ("google-oauth-token", f"curl -H 'Authorization: Bearer {sv.token('google-access-token')}'"),
    ("facebook-token", f"graph = GraphAPI(access_token='{sv.token('facebook-token')}')"),
    ("twitter-bearer-token", f"X_BEARER={sv.token('twitter-bearer')}"),
    ("tailscale-key", f"TS_AUTHKEY={sv.token('tailscale-key')}"),
    ("airtable-token", f"Airtable(api_key='{sv.token('airtable-token')}')"),
    ("netrc-password", "machine api.heroku.com login ops@acme.io password Qx7pLm2vZk9wRt"),
    ("azure-sas-token", f"BACKUP_URL={sv.token('azure-sas-url')}"),
    ("generic-secret", "<password>Qx7pLm2vZk9wRt3</password>"),
    ("generic-secret", "define('DB_PASSWORD', 'Qx7pLm2vZk9wRt3');"),
    ("generic-secret", 'dataSource.setPassword("Qx7pLm2vZk9wRt3");'),
    ("generic-secret", "ENV DB_PASSWORD Qx7pLm2vZk9wRt3"),
    ("generic-secret", '$pw = ConvertTo-SecureString "Qx7pLm2vZk9wRt3" -AsPlainText -Force'),
    ("cli-password", "sshpass -p 'Qx7pLm2vZk9wRt3' ssh deploy@bastion"),
    ("generic-secret", '- name: DB_PASSWORD\n  value: "Qx7pLm2vZk9wRt3"'),
    ("generic-secret", "db:\n  password: |\n    Qx7pLm2vZk9wRt3"),
    ("generic-secret",
     'variable "db_password" {\n  type    = string\n  default = "Qx7pLm2vZk9wRt3"\n}'),
    ("notion-token", f"notion = Client(auth='{sv.token('notion-legacy-token')}')"),
    ("encoded-private-key",
     "  tls.key: " + base64.b64encode(sv.pem_key(random.Random(8)).encode()).decode()),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "line"), TRUE, ids=[f"{k}-{i}" for i, (k, _) in enumerate(TRUE)])
def test_true_values_are_found_and_redacted(kind: str, line: str) -> None:
    result = redact_text(line)
    assert [h.kind for h in result.hits] == [kind]
    assert "[REDACTED:" in result.text


# Prefixed formats whose kind is the generator's name: the value alone, assigned as configs do.
PREFIXED = ("mapbox-token", "dropbox-token", "dynatrace-token", "prefect-key", "teams-webhook",
            "adobe-secret", "flutterwave-key", "duffel-token", "easypost-key", "shippo-token",
            "typeform-token", "readme-key", "infracost-key", "scalingo-token", "frameio-token",
            "clojars-token", "harness-token", "cloudflare-origin-ca-key", "okta-token",
            "contentful-token", "sourcegraph-token", "buildkite-token", "circleci-token",
            "netlify-token", "figma-token", "langsmith-key", "pinecone-key", "resend-key",
            "neon-key", "onepassword-token", "cerebras-key", "fireworks-key", "plaid-token",
            "hubspot-token", "braintree-token", "firebase-fcm-key", "jfrog-token",
            "bitbucket-app-password", "crates-io-token", "discord-bot-token")  # fmt: skip


@pytest.mark.parametrize("kind", PREFIXED)
def test_prefixed_formats(kind: str) -> None:
    for seed in range(3):
        value = sv.token(kind, seed)
        result = redact_text(f'ENDPOINT_CREDENTIAL = "{value}"  # {kind}')
        assert [h.kind for h in result.hits] == [kind], value
        secret = value.split(" ")[-1].split("webhookb2/")[-1]
        assert secret not in result.text


@pytest.mark.parametrize("kind", PREFIXED)
def test_prefixed_formats_reject_patterned_lookalikes(kind: str) -> None:
    value = sv.token(kind)
    # Same prefix and length, body a repeated pattern: documentation, not a credential.
    head = max(value.rfind(c, 0, 12) for c in "_-.") + 1
    fake = value[:head] + ("x" * len(value))[: len(value) - head]
    assert [h.kind for h in redact_text(f"example: {fake}").hits if h.kind == kind] == []


def test_there_are_more_than_thirty_kinds() -> None:
    assert len({d.kind for d in rules.DETECTORS}) >= 40


def _jwt_without_claims() -> str:
    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256"}).encode()).decode().rstrip("=")
    body = base64.urlsafe_b64encode(b'{"a": 1}').decode().rstrip("=")
    return f"{head}.{body}.sig"


# Look-alikes: right prefix, wrong shape (checksum, alphabet, length, placeholder, public example).
LOOKALIKES = [
    f"GH = '{sv.bad_checksum(sv.token('github-pat'))}'",
    f"NPM = '{sv.bad_checksum(sv.token('npm-token'))}'",
    "GITHUB_TOKEN=ghp_" + "x" * 36,
    "HF_TOKEN=hf_" + "abcdefghijklmnopqrstuvwxyzabcdefgh",
    "aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE",
    "key: task-" + "a1b2c3d4" * 5,
    "glpat-" + "x" * 20,
    f"token = '{_jwt_without_claims()}'",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0"
    "IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",  # jwt.io's sample
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBek"
    "soGMGw==;",  # the Azurite emulator's published key
    'TEST_SECRET = "lcccccccX2kcccccccY2jcccccccssIC"',  # Django's patterned CSRF test values
    'MASKED = "1bcdefghij2bcdefghij3bcdefghij4bcdefghij5bcdefghij6bcdefghijABCD"',
    'password = "pbkdf2_sha256$720000$seasalt$sLd6HRvr1hr3cFMxT8lAdSrn51pIsu9ABwU1bWq7Tbg="',
    'AUTH_USER_MODEL = "auth_tests.CustomUserNonUniqueUsername"',
    "gcloud run deploy api --allow-unauthenticated --region europe-west1",
    'PASSWORD_HASH = "argon2$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQ$Rdescudv"',
    "DATABASE_URL=postgres://user:password@localhost:5432/app",
    "mysql -u root -p",
    "docker login --password-stdin",
    'dsn := "root:@tcp(127.0.0.1:3306)/app"',
    "EAAB" + "abcdefghij" * 10,  # a Facebook-shaped run of a pattern
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "A" * 22 + "B3NzaC1yc2EAAAADAQABAAABAQC7" * 4,  # base64 of zeros, then a key: no "%"
    "machine api.example.com login bob password $NETRC_PASSWORD",
    "the build machine logs in with a password from the vault",
    "  tls.crt: " + base64.b64encode(sv.pem_key(random.Random(8), "CERTIFICATE").encode()).decode(),
    "ya29.example-token-goes-here",
    "<password>${env.NEXUS_PASSWORD}</password>",
    "<token>org.example.TokenFilter</token>",
    "define('DB_PASSWORD', 'password_here');",
    'ds.setPassword(System.getenv("DB_PASSWORD"));',
    'builder.setPasswordEncoder("bcrypt-default")',
    "ENV API_KEY_FILE /run/secrets/api_key",
    'ConvertTo-SecureString "$env:DEPLOY_PASSWORD" -AsPlainText -Force',
    "- name: DB_PASSWORD\n  valueFrom:\n    secretKeyRef: {name: db, key: password}",
    '- name: DB_PASSWORD\n  value: "${DB_PASSWORD}"',
    "- name: TOKEN_URL\n  value: https://auth.example.com/oauth/token",
    "password_policy: |\n  Twelve characters, one digit.",
    'variable "db_password" {\n  sensitive = true\n}\n'
    'variable "x" {\n  default = "Qx7pLm2vZk9wRt3"\n}',  # the block closed before any default
    "https://acme.blob.core.windows.net/c?sv=2022-11-02&sig=REPLACE_WITH_YOUR_SIGNATURE_HERE_PLEASE",
    "secret_key_base = Rails.application.credentials.secret_key_base_for_production_server",
    "MTIzNDU2Nzg5MDEyMzQ1Njc4.abcdef.not-a-token-just-a-long-identifier-name",  # id, then prose
]


@pytest.mark.parametrize("line", LOOKALIKES)
def test_lookalikes_are_not_reported(line: str) -> None:
    assert redact_text(line).hits == ()


def test_github_checksum() -> None:
    token = sv.token("github-pat")
    assert crc32_base62_ok(token, 4)
    assert not crc32_base62_ok(sv.bad_checksum(token), 4)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("db_password", True), ("apiKey", True), ("AUTH", True), ("basic_auth", True),
        ("STRIPE_SECRET", True), ("authToken", True), ("DB_PASS", True), ("Authorization", True),
        ("AUTH_USER_MODEL", False), ("unauthenticated", False), ("token_url", False),
        ("password_field", False), ("author", False), ("bypass", False), ("tokenizer", False),
        ("PASSWORD_HASH", False), ("passthrough", False),
    ],
)  # fmt: skip
def test_names(name: str, secret: bool) -> None:
    assert secret_like(name) is secret


def test_openssh_keys_are_not_placeholders_despite_aaaaaa() -> None:
    key = sv.openssh_key(random.Random(3))
    assert "AAAAAA" in key
    result = redact_text(key)
    assert [h.kind for h in result.hits] == ["private-key"]
    assert key.split("\n")[1] not in result.text


PEM_LABELS = ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
              "DSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK")  # fmt: skip


def test_putty_private_lines_are_redacted_and_public_lines_kept() -> None:
    key = sv.putty_key(random.Random(4))
    result = redact_text(key)
    assert [h.kind for h in result.hits] == ["private-key"]
    lines = key.split("\n")
    private = lines[lines.index("Private-Lines: 1") + 1]
    assert private not in result.text
    assert lines[4] in result.text  # the public half is not a secret
    assert "Private-MAC" in result.text


@pytest.mark.parametrize("label", PEM_LABELS)
def test_every_pem_flavour(label: str) -> None:
    key = sv.pem_key(random.Random(label), label, 600)
    assert [h.kind for h in redact_text(key).hits] == ["private-key"]


def test_allow_comments_redact_but_do_not_report() -> None:
    token = sv.token("github-pat", 9)
    text = "\n".join([
        f'DEMO = "{token}"  # pragma: allowlist secret',
        f"demo2 = '{sv.token('stripe-live', 9)}'; // gitleaks:allow",
        "# pragma: allowlist nextline secret",
        f"DEMO3 = '{sv.token('npm-token', 9)}'",
        f"REAL = '{sv.token('github-pat', 10)}'",
    ])  # fmt: skip
    result = redact_text(text)
    assert result.allowed == 3 and len(result.reported) == 1
    assert token not in result.text  # allowed values still never leave the process
    assert [f.line for f in scan_text("app.py", text)] == [5]


def test_fixtures_are_reported_a_step_lower_and_say_so() -> None:
    line = f"KEY = '{sv.token('github-pat')}'"
    [real] = scan_text("app/settings.py", line)
    [fixture] = scan_text("tests/fixtures/settings.py", line)
    assert (real.severity, fixture.severity) == ("critical", "medium")
    assert "test code or a fixture" in fixture.description
    [generic] = scan_text("spec/helpers.rb", 'password = "Qx7pLm2vZk9wRt"')
    assert generic.severity == "low"
