"""A labelled secrets corpus, generated afresh from a seed: a repository, and a pull request that
adds it, holding real-format secrets of many kinds in many languages beside decoys.

Every value is generated here at run time (``tests/secret_values.py``); nothing real-looking is
committed. Each labelled line is one of:

- ``secret``: a credential a scanner must report (``fixture`` when it sits under a test path,
  where it is reported at a lower severity);
- ``decoy``: something a scanner must not report (placeholders, public example values, hashes,
  look-alikes with a bad checksum, ordinary names, patterned test values);
- ``allowed``: a credential on a line marked ``gitleaks:allow`` / ``pragma: allowlist secret``;
- ``copy``: another occurrence of a labelled secret (plain, URL-encoded or base64) in a place no
  detector would flag by itself: it must be redacted like the original, but is not scored.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from tests import secret_values as sv

PR_PATH = "(pull request description)"


@dataclass(frozen=True)
class Label:
    """One labelled line: where it is, what it holds, and the values that must never leak."""

    role: str  # secret | decoy | allowed | copy
    kind: str
    path: str
    line: int
    values: tuple[str, ...] = ()
    fixture: bool = False


@dataclass
class Corpus:
    """Files (path → text), labels, and the pull request's title and description."""

    files: dict[str, list[str]] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    title: str = ""
    description: list[str] = field(default_factory=list)

    def add(
        self,
        path: str,
        text: str,
        role: str | None = None,
        kind: str = "",
        values: tuple[str, ...] = (),
    ) -> None:
        """Append ``text`` (one or more lines) to ``path``; label its first line."""
        lines = self.files.setdefault(path, [])
        if role is not None:
            fixture = path.startswith(("tests/", "spec/")) or "/fixtures/" in path
            self.labels.append(Label(role, kind, path, len(lines) + 1, values, fixture))
        lines.extend(text.split("\n"))

    def filler(self, path: str, n: int = 2) -> None:
        """Ordinary code lines between labelled ones (scanners must stay quiet on them too)."""
        for _ in range(n):
            self.files.setdefault(path, []).append(self._rng_filler(path))

    def _rng_filler(self, path: str) -> str:
        n = len(self.files.get(path, []))
        if path.endswith((".py", ".rb", ".sh", ".yml", ".yaml", ".env", ".tf", ".properties")):
            return f"# section {n}: configuration for the service"
        if path.endswith(".md"):
            return f"Step {n}: configure the service as shown."
        if path.endswith(".json"):
            return f'  "setting_{n}": {n},'
        return f"// section {n}: configuration for the service"

    def texts(self) -> dict[str, str]:
        """path → file text."""
        return {p: "\n".join(lines) + "\n" for p, lines in self.files.items()}

    def by_role(self, role: str) -> list[Label]:
        """Labels of one role."""
        return [x for x in self.labels if x.role == role]


# --- how a value is written in each language ----------------------------------------------------

Template = Callable[[str, str], str]
LANGS: dict[str, tuple[str, Template]] = {
    "py": ("app/settings.py", lambda n, v: f'{n.upper()} = "{v}"'),
    "js": ("web/src/config.js", lambda n, v: f"const {_camel(n)} = '{v}';"),
    "ts": ("web/src/api/client.ts", lambda n, v: f'export const {_camel(n)}: string = "{v}";'),
    "go": ("cmd/server/config.go", lambda n, v: f'\t{_camel(n)} := "{v}"'),
    "java": (
        "src/main/java/com/acme/Config.java",
        lambda n, v: f'    private static final String {n.upper()} = "{v}";',
    ),
    "rb": ("config/initializers/services.rb", lambda n, v: f"{n.upper()} = '{v}'"),
    "php": ("src/Config.php", lambda n, v: f"    ${_camel(n)} = '{v}';"),
    "yaml": ("deploy/values.yaml", lambda n, v: f"  {n}: {v}"),
    "env": (".env.production", lambda n, v: f"{n.upper()}={v}"),
    "sh": ("scripts/deploy.sh", lambda n, v: f'export {n.upper()}="{v}"'),
    "json": ("config/services.json", lambda n, v: f'  "{n}": "{v}",'),
    "tf": ("infra/main.tf", lambda n, v: f'  {n} = "{v}"'),
    "cs": ("src/Acme/Settings.cs", lambda n, v: f'        var {_camel(n)} = "{v}";'),
    "kt": ("android/app/src/main/kotlin/Keys.kt", lambda n, v: f'    val {_camel(n)} = "{v}"'),
    "rs": ("src/config.rs", lambda n, v: f'    let {n} = "{v}";'),
    "md": ("docs/SETUP.md", lambda n, v: f"    {n.upper()}={v}"),
    "readme": ("README.md", lambda n, v: f"Set `{n.upper()}` to `{v}` before deploying."),
    "xml": ("src/main/resources/app.config", lambda n, v: f'  <add key="{n}" value="{v}" />'),
    "properties": (
        "src/main/resources/application.properties",
        lambda n, v: f"{n.replace('_', '.')}={v}",
    ),
    "docker": ("Dockerfile", lambda n, v: f"ENV {n.upper()}={v}"),
    "fixture": ("tests/fixtures/settings.py", lambda n, v: f'{n.upper()} = "{v}"'),
    "spec": ("spec/fixtures/credentials.yml", lambda n, v: f"{n}: {v}"),
}


def _camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(w.capitalize() for w in rest)


# kind → (variable names to use, how many, languages to spread over)
PLAIN: dict[str, tuple[tuple[str, ...], int]] = {
    "aws-access-key": (("aws_access_key_id",), 5),
    "github-pat": (("github_token", "gh_token"), 6),
    "github-app-token": (("installation_token",), 3),
    "github-oauth": (("oauth_token",), 3),
    "github-fine-grained": (("github_pat",), 3),
    "gitlab-pat": (("gitlab_token",), 4),
    "slack-bot": (("slack_bot_token",), 4),
    "slack-webhook": (("slack_webhook",), 3),
    "stripe-live": (("stripe_secret",), 4),
    "stripe-restricted": (("stripe_restricted",), 2),
    "google-api-key": (("google_maps_key",), 4),
    "openai-key": (("openai_api_key",), 4),
    "anthropic-key": (("anthropic_api_key",), 4),
    "huggingface-token": (("hf_token", "huggingface_token"), 5),
    "sendgrid-key": (("sendgrid_api_key",), 3),
    "npm-token": (("npm_token",), 4),
    "pypi-token": (("pypi_token",), 3),
    "twilio-api-key": (("twilio_key_sid",), 3),
    "digitalocean-token": (("do_token",), 3),
    "shopify-token": (("shopify_access_token",), 3),
    "dockerhub-token": (("docker_pat",), 3),
    "vault-token": (("vault_token",), 3),
    "grafana-token": (("grafana_sa_token",), 3),
    "sentry-token": (("sentry_auth_token",), 3),
    "newrelic-key": (("newrelic_api_key",), 3),
    "rubygems-token": (("gem_host_api_key",), 2),
    "linear-key": (("linear_api_key",), 2),
    "postman-key": (("postman_api_key",), 2),
    "age-secret-key": (("age_identity",), 2),
    "groq-key": (("groq_api_key",), 2),
    "jwt": (("session_jwt", "bearer_token"), 4),
    "aws-secret-key": (("aws_secret_access_key",), 5),
    "datadog-api-key": (("dd_api_key", "datadog_api_key"), 4),
    "datadog-app-key": (("dd_app_key", "datadog_application_key"), 4),
    "cloudflare-token": (("cloudflare_api_token",), 3),
    "twilio-auth-token": (("twilio_auth_token",), 3),
    "azure-ad-secret": (("azure_client_secret",), 3),
    "mailgun-key": (("mailgun_api_key",), 2),
    "mailchimp-key": (("mailchimp_api_key",), 2),
    "telegram-token": (("telegram_bot_token",), 3),
    "discord-webhook": (("discord_webhook_url",), 2),
    "password": (("db_password", "smtp_password", "admin_password", "redis_password"), 8),
}
ORDER = tuple(LANGS)
SCORED_LANGS = tuple(k for k in ORDER if k not in ("fixture", "spec"))


def _pw(rng: random.Random) -> str:
    return sv.pick(rng, sv.ALNUM, 18)


def build(seed: int = 7) -> Corpus:
    """The whole corpus for ``seed``: same seed, same corpus."""
    rng = random.Random(seed)
    c = Corpus()
    _plain(c, rng)
    _fixtures(c, rng)
    _connections(c, rng)
    _keys(c, rng)
    _decoys(c, rng)
    _allowed(c, rng)
    _pull_request(c, rng)
    return c


def _plain(c: Corpus, rng: random.Random) -> None:
    """Provider tokens and keyword secrets, spread round-robin over the languages."""
    i = 0
    for kind, (names, count) in PLAIN.items():
        for k in range(count):
            lang = SCORED_LANGS[i % len(SCORED_LANGS)]
            i += 1
            path, tpl = LANGS[lang]
            value = sv.TOKENS[kind](rng)
            c.add(path, tpl(names[k % len(names)], value), "secret", kind, (value,))
            if k == 0:
                _copy(c, rng, kind, value)
            c.filler(path, 1)


def _copy(c: Corpus, rng: random.Random, kind: str, value: str) -> None:
    """Another occurrence of ``value`` where no detector would look: plain, URL-encoded, base64."""
    form = rng.choice(("plain", "plain", "url", "base64"))
    path = "tests/test_settings_roundtrip.py"
    if form == "plain":
        text = f'    assert loaded["{kind}"] == "{value}"'
    elif form == "url":
        text = f'    CALLBACK = "https://hooks.acme.io/cb?next=1&v={quote(value, safe="")}"'
    else:
        text = f'    BLOB = "{base64.b64encode(value.encode()).decode()}"'
    c.add(path, text, "copy", f"{kind}/{form}", (value,))


def _fixtures(c: Corpus, rng: random.Random) -> None:
    """Real-format credentials committed under test paths: reported, at a lower severity."""
    for i, kind in enumerate(("github-pat", "stripe-live", "aws-access-key", "slack-bot",
                              "huggingface-token", "openai-key", "npm-token", "sendgrid-key")):  # fmt: skip
        lang = ("fixture", "spec")[i % 2]
        path, tpl = LANGS[lang]
        value = sv.TOKENS[kind](rng)
        c.add(path, tpl(f"{kind.replace('-', '_')}", value), "secret", kind, (value,))
        c.filler(path, 1)


def _connections(c: Corpus, rng: random.Random) -> None:
    """Database URLs and DSNs in the syntaxes of the major languages, and Azure strings."""
    host = lambda: rng.choice(("db.internal", "10.0.3.17", "pg-main.prod.acme.io"))  # noqa: E731
    rows: list[tuple[str, str, Callable[[str], str]]] = [
        ("app/db.py", "url-password", lambda p: f'DATABASE_URL = "postgres://app:{p}@{host()}:5432/app"'),
        ("app/db.py", "url-password", lambda p: f'engine = create_engine("mysql+pymysql://svc:{p}@{host()}/shop")'),
        ("config/database.yml", "url-password", lambda p: f"  url: mysql2://deploy:{p}@{host()}/shop_production"),
        ("config/database.yml", "url-password", lambda p: f"  url: postgresql://rails:{p}@{host()}/rails"),
        ("cmd/server/db.go", "go-dsn", lambda p: f'\tdsn := "orders:{p}@tcp({host()}:3306)/orders?parseTime=true"'),
        ("cmd/server/db.go", "go-dsn", lambda p: f'\tdb, err := sql.Open("mysql", "root:{p}@tcp(127.0.0.1:3306)/app")'),
        ("src/Database.php", "pdo-password", lambda p: f"        $pdo = new PDO('mysql:host={host()};dbname=shop', 'shop', '{p}');"),
        ("src/Database.php", "pdo-password", lambda p: f'        $db = new \\PDO("pgsql:host={host()};dbname=crm", "crm", "{p}");'),
        ("src/Acme/Db.cs", "dotnet-connection", lambda p: f'        var cs = "Server=tcp:{host()},1433;Database=app;User ID=app;Password={p};Encrypt=True;";'),
        ("src/main/resources/application.properties", "jdbc-password", lambda p: f"spring.datasource.url=jdbc:postgresql://{host()}:5432/app?user=app&password={p}"),
        ("src/main/resources/application.properties", "jdbc-password", lambda p: f"spring.datasource.password={p}"),
        ("web/src/db.js", "url-password", lambda p: f"const uri = 'mongodb+srv://api:{p}@cluster0.x1y2z.mongodb.net/prod';"),
        ("deploy/values.yaml", "url-password", lambda p: f"  brokerUrl: amqp://worker:{p}@rabbitmq.prod:5672/"),
        (".env.production", "url-password", lambda p: f"REDIS_URL=redis://:{p}@cache.prod.acme.io:6379/0"),
        ("scripts/deploy.sh", "basic-auth", lambda p: 'curl -H "Authorization: Basic ' + base64.b64encode(f"deploy:{p}".encode()).decode() + '" https://ci.acme.io/api'),
        ("scripts/deploy.sh", "curl-password", lambda p: f"curl -u admin:{p} https://nexus.acme.io/repository/"),
    ]  # fmt: skip
    for path, kind, line in rows:
        p = _pw(rng)
        text = line(p)
        values = (p,) if kind != "basic-auth" else (p, text.split("Basic ")[1].split('"')[0])
        c.add(path, text, "secret", kind, values)
        c.filler(path, 1)
    for path, fmt in (
        ("src/Acme/Storage.cs", '        const string Conn = "DefaultEndpointsProtocol=https;AccountName=acmeprod;AccountKey={k};EndpointSuffix=core.windows.net";'),
        ("deploy/values.yaml", "  storageConnection: DefaultEndpointsProtocol=https;AccountName=acmelogs;AccountKey={k};EndpointSuffix=core.windows.net"),
        ("app/settings.py", 'AZURE_STORAGE_KEY = "{k}"'),
        ("infra/main.tf", '  servicebus = "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={k}"'),
    ):  # fmt: skip
        key = sv.TOKENS["azure-storage-key"](rng)
        if "servicebus" in fmt:
            key = sv.pick(rng, sv.B64, 43) + "="
        c.add(path, fmt.format(k=key), "secret", "azure-storage-key", (key,))
        c.filler(path, 1)


def _keys(c: Corpus, rng: random.Random) -> None:
    """Private keys of every flavour, as files, in strings and in JSON."""
    blocks = [
        ("deploy/id_rsa", "RSA PRIVATE KEY", "file"),
        ("deploy/ec.pem", "EC PRIVATE KEY", "file"),
        ("deploy/pkcs8.key", "PRIVATE KEY", "file"),
        ("deploy/legacy.key", "ENCRYPTED PRIVATE KEY", "file"),
        ("deploy/dsa.key", "DSA PRIVATE KEY", "file"),
        ("deploy/signing.asc", "PGP PRIVATE KEY BLOCK", "file"),
        ("app/signing.py", "RSA PRIVATE KEY", "python"),
        ("web/src/sign.js", "PRIVATE KEY", "js"),
    ]
    for path, label, how in blocks:
        key = sv.pem_key(rng, label, 900)
        body = key.split("\n")[1:4]
        if how == "python":
            c.add(path, f'KEY = """{key}"""', "secret", "private-key", tuple(body))
        elif how == "js":
            inline = key.replace("\n", "\\n")
            c.add(path, f"const key = '{inline}';", "secret", "private-key", tuple(body))
        else:
            c.add(path, key, "secret", "private-key", tuple(body))
        c.filler(path, 1)
    for path in ("deploy/id_ed25519", "docs/ops/bastion_key.txt"):
        key = sv.openssh_key(rng)
        c.add(path, key, "secret", "openssh-key", tuple(key.split("\n")[1:3]))
    key = sv.pem_key(rng, "PRIVATE KEY", 1190)
    inline = key.replace("\n", "\\n")
    c.add(
        "deploy/gcp-service-account.json",
        '{\n  "type": "service_account",\n  "project_id": "acme-prod",',
    )
    c.add(
        "deploy/gcp-service-account.json",
        f'  "private_key": "{inline}\\n",',
        "secret",
        "private-key",
        tuple(key.split("\n")[1:4]),
    )
    c.add(
        "deploy/gcp-service-account.json",
        '  "client_email": "ci@acme-prod.iam.gserviceaccount.com"\n}',
    )


# Public example values and patterned test values (facts: AWS and jwt.io documentation, Django's
# CSRF and hasher tests, the Azurite emulator's published key, Stripe's documented test key).
_JWT_IO = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)  # fmt: skip
_AZURITE = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _decoys(c: Corpus, rng: random.Random) -> None:
    """What must not be reported, across the same languages."""
    fixed = [
        ("app/settings.py", 'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"'),
        ("app/settings.py", 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"'),
        ("docs/SETUP.md", f"    Authorization: Bearer {_JWT_IO}"),
        ("web/src/api/client.ts", f'const demoToken = "{_JWT_IO}";'),
        ("deploy/values.yaml", f"  devStorage: DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={_AZURITE};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"),
        ("tests/test_csrf.py", 'TEST_SECRET = "lcccccccX2kcccccccY2jcccccccssIC"'),
        ("tests/test_csrf.py", 'MASKED_TEST_SECRET1 = "1bcdefghij2bcdefghij3bcdefghij4bcdefghij5bcdefghij6bcdefghijABCD"'),
        ("tests/test_hashers.py", '    encoded = "pbkdf2_sha256$720000$seasalt$sLd6HRvr1hr3cFMxT8lAdSrn51pIsu9ABwU1bWq7Tbg="'),
        ("tests/test_hashers.py", '    PASSWORD_HASH = "argon2$argon2id$v=19$m=102400,t=2,p=8$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"'),
        ("tests/test_hashers.py", '    hashed = "bcrypt_sha256$$2b$12$LC2ooQPEHmNRVdtyG.vU0OQcWnxi2Bx/sNZEr8DgIyjM.tmNoc4Ka"'),
        ("app/settings.py", 'AUTH_USER_MODEL = "auth_tests.CustomUserNonUniqueUsername"'),
        ("scripts/deploy.sh", "gcloud run deploy api --image gcr.io/acme/api --allow-unauthenticated --region europe-west1"),
        ("app/settings.py", 'PASSWORD_RESET_TIMEOUT = 259200'),
        ("app/settings.py", 'SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]'),
        ("app/settings.py", 'TOKEN_URL = "https://oauth2.googleapis.com/token"'),
        ("web/src/config.js", "const apiKey = process.env.API_KEY;"),
        ("web/src/config.js", "const password = document.getElementById('password').value;"),
        ("deploy/values.yaml", "  password: ${DB_PASSWORD}"),
        ("deploy/values.yaml", "  token: '{{ .Values.secrets.token }}'"),
        (".github/workflows/ci.yml", "          GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"),
        (".github/workflows/ci.yml", "          NPM_TOKEN: ${{ secrets.NPM_TOKEN }}"),
        ("config/services.json", '  "api_key": "YOUR_API_KEY_HERE",'),
        ("config/services.json", '  "secret": "<your-secret>",'),
        (".env.example", "STRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"),
        (".env.example", "DATABASE_URL=postgres://user:password@localhost:5432/app"),
        (".env.example", "OPENAI_API_KEY=sk-..."),
        (".env.example", "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("docs/SETUP.md", "    export AWS_SECRET_ACCESS_KEY=<secret-access-key>"),
        ("docs/SETUP.md", "Use `postgres://scott:tiger@example.com/db` in development."),
        ("README.md", "Set `HF_TOKEN` to your token from https://huggingface.co/settings/tokens."),
        ("cmd/server/config.go", '\tpasswordField := "password_confirmation"'),
        ("cmd/server/config.go", '\ttokenHeader := "X-Auth-Token"'),
        ("src/main/java/com/acme/Config.java", '    private static final String SECRET_NAME = "prod/db/credentials";'),
        ("src/main/java/com/acme/Config.java", "    private String password = getPasswordFromVault();"),
        ("src/Config.php", "    $token = $request->header('X-Api-Token');"),
        ("src/Config.php", "    $password = bin2hex(random_bytes(16));"),
        ("config/initializers/services.rb", "SECRET_KEY_BASE = ENV.fetch('SECRET_KEY_BASE')"),
        ("config/initializers/services.rb", "TOKEN_TTL = 3600"),
        ("infra/main.tf", "  password = var.db_password"),
        ("infra/main.tf", "  secret_arn = aws_secretsmanager_secret.db.arn"),
        ("src/Acme/Settings.cs", '        var keyVaultUrl = "https://acme-kv.vault.azure.net/";'),
        ("app/signing.py", "def load_private_key(path: str, password: bytes | None = None) -> PrivateKeyTypes:"),
        ("app/signing.py", "    private_key: SSHPrivateKeyTypes = serialization.load_ssh_private_key(data, None)"),
        ("web/src/sign.js", "const publicKey = fs.readFileSync('keys/public.pem');"),
        ("deploy/public.pem", "-----BEGIN PUBLIC KEY-----"),
        ("docs/SETUP.md", "    -----BEGIN RSA PRIVATE KEY-----\n    ...\n    -----END RSA PRIVATE KEY-----"),
        ("web/src/api/client.ts", 'const STRIPE_PUBLISHABLE_KEY = "pk_live_51H8xQ2LkZ3YpR7vB9mN4tW6s";'),
        ("web/src/api/client.ts", "const nextPageToken = response.nextPageToken;"),
        ("scripts/deploy.sh", 'read -rsp "Password: " PASSWORD'),
        ("scripts/deploy.sh", "docker login -u \"$DOCKER_USER\" --password-stdin < /run/secrets/docker"),
        ("Dockerfile", "ARG NPM_TOKEN"),
        ("Dockerfile", "RUN --mount=type=secret,id=npmrc cp /run/secrets/npmrc ~/.npmrc"),
    ]  # fmt: skip
    for path, text in fixed:
        c.add(path, text, "decoy", "fixed")
        c.filler(path, 1)
    for i in range(30):  # look-alikes with a wrong GitHub/npm checksum
        prefix = ("ghp_", "gho_", "ghs_", "npm_")[i % 4]
        value = sv.bad_checksum(sv.checksummed(rng, prefix))
        lang = SCORED_LANGS[i % len(SCORED_LANGS)]
        path, tpl = LANGS[lang]
        c.add(path, tpl("build_ref", value), "decoy", "bad-checksum")
    for i in range(30):  # hashes and ids that look random but are not credentials
        lang = SCORED_LANGS[(i * 3) % len(SCORED_LANGS)]
        path, tpl = LANGS[lang]
        name, value = rng.choice((
            ("commit_sha", sv.pick(rng, sv.HEX, 40)),
            ("sha256_digest", sv.pick(rng, sv.HEX, 64)),
            ("request_id", _uuid(rng)),
            ("image_digest", "sha256:" + sv.pick(rng, sv.HEX, 64)),
            ("etag", sv.pick(rng, sv.HEX, 32)),
        ))  # fmt: skip
        c.add(path, tpl(name, value), "decoy", "hash-or-id")
    names = ("password_field", "token_endpoint", "secret_name", "api_key_header", "auth_backend")
    words = ("reset-password-form", "AuthenticationMiddleware", "tokenizer.json",
             "SECRET_VALUE_PLACEHOLDER", "django.contrib.auth.backends.ModelBackend")  # fmt: skip
    for i in range(35):  # ordinary names and words in secret-named places
        lang = SCORED_LANGS[(i * 5) % len(SCORED_LANGS)]
        path, tpl = LANGS[lang]
        c.add(path, tpl(names[i % 5], words[(i * 2) % 5]), "decoy", "ordinary-name")
    placeholders = ("changeme", "your-token-here", "xxxxxxxxxxxxxxxxxxxx", "<API_KEY>",
                    "REPLACE_ME", "dummy-secret-for-tests", "${SECRET}", "********", "example-key")  # fmt: skip
    for i in range(36):
        lang = SCORED_LANGS[(i * 7) % len(SCORED_LANGS)]
        path, tpl = LANGS[lang]
        c.add(path, tpl(("api_secret", "db_password", "auth_token")[i % 3], placeholders[i % 9]),
              "decoy", "placeholder")  # fmt: skip


def _uuid(rng: random.Random) -> str:
    h = sv.pick(rng, sv.HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _allowed(c: Corpus, rng: random.Random) -> None:
    """Credentials their authors marked as allowed, in both conventions."""
    rows = [
        ("app/settings.py", "github-pat", lambda v: f'DEMO_TOKEN = "{v}"  # pragma: allowlist secret'),
        ("web/src/config.js", "stripe-live", lambda v: f"const demoKey = '{v}'; // gitleaks:allow"),
        (".env.production", "slack-bot", lambda v: f"SLACK_DEMO={v} # gitleaks:allow"),
        ("cmd/server/config.go", "aws-access-key", lambda v: f'\tdemoKey := "{v}" // pragma: allowlist secret'),
        ("deploy/values.yaml", "huggingface-token", lambda v: f"  hfDemo: {v}  # gitleaks:allow"),
        ("scripts/deploy.sh", "npm-token", lambda v: f'NPM_DEMO="{v}" # pragma: allowlist secret'),
    ]  # fmt: skip
    for path, kind, tpl in rows:
        value = sv.TOKENS[kind](rng)
        c.add(path, tpl(value), "allowed", kind, (value,))


def _pull_request(c: Corpus, rng: random.Random) -> None:
    """A description that pastes a token, and a copy of a secret from the diff."""
    token = sv.TOKENS["github-pat"](rng)
    key = sv.TOKENS["aws-access-key"](rng)
    c.title = "Add the service configuration"
    first = next(x for x in c.labels if x.role == "secret" and x.kind == "stripe-live")
    c.description = [
        "This adds the configuration of every service.",
        "",
        f"To try it, the deploy bot uses `{token}` (rotated after merge).",
        f"The staging key is {key} for now.",
        f"Stripe is configured with {first.values[0]} as before.",
    ]
    c.labels.append(Label("secret", "github-pat", PR_PATH, 3, (token,)))
    c.labels.append(Label("secret", "aws-access-key", PR_PATH, 4, (key,)))
    c.labels.append(Label("copy", "stripe-live/description", PR_PATH, 5, first.values))


def diff_of(files: dict[str, str]) -> str:
    """A unified diff that adds every file."""
    out = []
    for path, text in sorted(files.items()):
        lines = text.rstrip("\n").split("\n")
        out += [
            f"diff --git a/{path} b/{path}",
            "new file mode 100644",
            "index 0000000..1111111",
            "--- /dev/null",
            f"+++ b/{path}",
            f"@@ -0,0 +1,{len(lines)} @@",
            *("+" + ln for ln in lines),
        ]
    return "\n".join(out) + "\n"


def encoded_forms(value: str) -> tuple[str, ...]:
    """The value and its cheap encodings (URL-encoded, base64) a leak check looks for."""
    forms = {value, quote(value, safe=""), base64.b64encode(value.encode()).decode()}
    return tuple(f for f in forms if len(f) >= 6)
