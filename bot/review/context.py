"""Repository context for the prompt prefix: languages, frameworks, manifests, security files.

Detection is one pass over the path list plus a few capped manifest reads, so it stays cheap on a
20,000-file tree. Every output is sorted, so equal trees give byte-identical prefixes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath

from bot.review.prompts import RepoContext

# A language counts if it has at least MIN_LANGUAGE_FILES files or LANGUAGE_SHARE of the source
# files: one deploy.sh in a Go repository is noise, a dozen shell scripts are an attack surface.
MIN_LANGUAGE_FILES = 3
LANGUAGE_SHARE = 0.02
MAX_LANGUAGES = 8
MAX_MANIFESTS = 40
MAX_SECURITY_FILES = 40
MAX_MANIFESTS_READ = 25
MAX_MANIFEST_BYTES = 64 * 1024
MAX_WALK_FILES = 200_000
GIT_TIMEOUT_S = 30

SKIP_DIRS = frozenset(
    {".git", "node_modules", ".venv", "venv", "vendor", "__pycache__", ".tox", "dist", "build"}
)
# Paths under these are not production code: matching "auth" in docs/ or tests/ is noise.
_NON_CODE_DIRS = frozenset(
    {"test", "tests", "spec", "specs", "__tests__", "testdata", "fixtures", "docs", "doc"}
)
_DOC_SUFFIXES = frozenset({".md", ".rst", ".txt", ".png", ".jpg", ".svg", ".gif", ".lock"})

_LANGUAGES: Mapping[str, str] = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript",
    ".cjs": "JavaScript", ".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript",
    ".go": "Go", ".rs": "Rust", ".java": "Java", ".kt": "Kotlin", ".kts": "Kotlin",
    ".scala": "Scala", ".groovy": "Groovy", ".rb": "Ruby", ".php": "PHP", ".cs": "C#",
    ".fs": "F#", ".vb": "Visual Basic", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".cxx": "C++", ".hpp": "C++", ".hh": "C++", ".m": "Objective-C", ".swift": "Swift",
    ".dart": "Dart", ".ex": "Elixir", ".exs": "Elixir", ".erl": "Erlang", ".hs": "Haskell",
    ".lua": "Lua", ".pl": "Perl", ".pm": "Perl", ".r": "R", ".sol": "Solidity", ".zig": "Zig",
    ".clj": "Clojure", ".sh": "Shell", ".bash": "Shell", ".zsh": "Shell", ".ps1": "PowerShell",
    ".sql": "SQL", ".tf": "Terraform", ".vue": "Vue", ".svelte": "Svelte",
}  # fmt: skip

# Manifest kind by file name; the kind selects the dependency table used to read it.
_MANIFEST_NAMES: Mapping[str, str] = {
    "pyproject.toml": "python", "setup.py": "python", "setup.cfg": "python",
    "Pipfile": "python", "package.json": "node", "go.mod": "go", "Cargo.toml": "rust",
    "pom.xml": "java", "build.gradle": "java", "build.gradle.kts": "java", "Gemfile": "ruby",
    "composer.json": "php", "Dockerfile": "", "Chart.yaml": "", "kustomization.yaml": "",
    "kustomization.yml": "", "compose.yml": "", "compose.yaml": "",
}  # fmt: skip
_MANIFEST_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:^|.*/)requirements[^/]*\.(?:txt|in)$"), "python"),
    (re.compile(r"(?:^|.*/)requirements/[^/]+\.(?:txt|in)$"), "python"),
    (re.compile(r".*\.csproj$"), "dotnet"),
    (re.compile(r"(?:^|.*/)(?:[^/]+\.)?dockerfile(?:\.[^/]+)?$", re.IGNORECASE), ""),
    (re.compile(r"(?:^|.*/)docker-compose[^/]*\.ya?ml$"), ""),
    (re.compile(r".*\.tf$"), ""),
    (re.compile(r"^\.github/workflows/[^/]+\.ya?ml$"), ""),
    (re.compile(r"(?:^|.*/)(?:k8s|kubernetes|manifests|helm|charts|deploy)/.*\.ya?ml$"), ""),
)

# Dependency names per ecosystem → display name. A dependency matches its key exactly or as a
# prefix followed by a separator ("github.com/labstack/echo/v4", "org.springframework.boot:x").
_FRAMEWORKS: Mapping[str, Mapping[str, str]] = {
    "python": {
        "django": "Django", "djangorestframework": "Django REST framework", "flask": "Flask",
        "fastapi": "FastAPI", "starlette": "Starlette", "tornado": "Tornado",
        "aiohttp": "aiohttp", "sanic": "Sanic", "pyramid": "Pyramid", "sqlalchemy": "SQLAlchemy",
        "jinja2": "Jinja2", "pyjwt": "PyJWT", "celery": "Celery", "peewee": "peewee",
    },
    "node": {
        "express": "Express", "next": "Next.js", "react": "React", "vue": "Vue",
        "@angular/core": "Angular", "svelte": "Svelte", "koa": "Koa", "fastify": "Fastify",
        "@nestjs/core": "NestJS", "@hapi/hapi": "hapi", "prisma": "Prisma",
        "@prisma/client": "Prisma", "sequelize": "Sequelize", "typeorm": "TypeORM",
        "mongoose": "Mongoose", "knex": "Knex", "jsonwebtoken": "jsonwebtoken",
        "passport": "Passport", "ejs": "EJS", "handlebars": "Handlebars", "pug": "Pug",
    },
    "go": {
        "github.com/gin-gonic/gin": "Gin", "github.com/labstack/echo": "Echo",
        "github.com/gofiber/fiber": "Fiber", "github.com/go-chi/chi": "chi",
        "github.com/gorilla/mux": "gorilla/mux", "gorm.io/gorm": "GORM",
        "github.com/golang-jwt/jwt": "golang-jwt",
    },
    "rust": {
        "actix-web": "Actix Web", "axum": "Axum", "rocket": "Rocket", "warp": "warp",
        "diesel": "Diesel", "sqlx": "SQLx", "jsonwebtoken": "jsonwebtoken",
    },
    "java": {
        "org.springframework": "Spring", "org.hibernate": "Hibernate",
        "org.apache.struts": "Struts", "io.micronaut": "Micronaut", "io.quarkus": "Quarkus",
        "io.jsonwebtoken": "JJWT",
    },
    "ruby": {"rails": "Rails", "sinatra": "Sinatra", "devise": "Devise", "jwt": "ruby-jwt"},
    "php": {
        "laravel/framework": "Laravel", "symfony": "Symfony", "doctrine/orm": "Doctrine",
        "slim/slim": "Slim", "twig/twig": "Twig",
    },
    "dotnet": {
        "microsoft.aspnetcore": "ASP.NET Core", "microsoft.net.sdk.web": "ASP.NET Core",
        "microsoft.entityframeworkcore": "Entity Framework Core",
    },
}  # fmt: skip
_JSON_DEP_KEYS = {
    "node": ("dependencies", "devDependencies", "peerDependencies", "optionalDependencies"),
    "php": ("require", "require-dev"),
}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_.\-/@:]+")
_SEPARATORS = "/.:-"

_SECURITY_NAMES = frozenset(
    {"settings.py", "nginx.conf", "httpd.conf", ".htaccess", "web.config", "sudoers",
     "application.properties", "application.yml", "application.yaml", "CODEOWNERS"}
)  # fmt: skip
_SECURITY_WORD = re.compile(
    r"^(?:auth(?!or)|login|logout|signin|signup|session|crypt|encrypt|decrypt|secur|permission"
    r"|acl|rbac|oauth|saml|jwt|password|passwd|secret|middleware|csrf|sanitiz|upload|sso)"
)
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _skipped(parts: tuple[str, ...]) -> bool:
    return any(part in SKIP_DIRS for part in parts[:-1])


def language_of(path: str) -> str | None:
    """The language of a source file by extension, or None."""
    return _LANGUAGES.get(PurePosixPath(path).suffix.lower())


def manifest_kind(path: str) -> str | None:
    """The ecosystem of a manifest ("" for deployment files), or None if ``path`` is not one."""
    name = path.rsplit("/", 1)[-1]
    if name in _MANIFEST_NAMES:
        return _MANIFEST_NAMES[name]
    for pattern, kind in _MANIFEST_PATTERNS:
        if pattern.match(path):
            return kind
    return None


def is_security_relevant(path: str) -> bool:
    """Whether ``path`` looks like authentication, crypto, config, CI or infrastructure code."""
    pure = PurePosixPath(path)
    if _NON_CODE_DIRS & set(pure.parts[:-1]):
        return False
    if pure.name in _SECURITY_NAMES or manifest_kind(path) == "":
        return True
    if pure.suffix.lower() in _DOC_SUFFIXES:
        return False
    words = _WORD_SPLIT.split(_CAMEL.sub(r"\1 \2", path).lower())
    return any(_SECURITY_WORD.match(word) for word in words if word)


def select_languages(counts: Mapping[str, int]) -> tuple[str, ...]:
    """Languages above the cutoff, the MAX_LANGUAGES largest, sorted by name."""
    total = sum(counts.values())
    kept = [
        lang
        for lang, n in counts.items()
        if n >= MIN_LANGUAGE_FILES or (total and n / total >= LANGUAGE_SHARE)
    ]
    kept.sort(key=lambda lang: (-counts[lang], lang))
    return tuple(sorted(kept[:MAX_LANGUAGES]))


def _shallowest(paths: Iterable[str], limit: int) -> list[str]:
    # Root-level files say the most about a repository; deep ones are cut first.
    return sorted(paths, key=lambda p: (p.count("/"), p))[:limit]


def dependency_names(kind: str, text: str) -> set[str]:
    """Lower-cased dependency-like tokens of a manifest (JSON keys for package/composer files)."""
    dep_keys = _JSON_DEP_KEYS.get(kind)
    if dep_keys is not None:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return {
                str(name).lower()
                for key in dep_keys
                if isinstance(data.get(key), dict)
                for name in data[key]
            }
    tokens = {token.lower() for token in _TOKEN_RE.findall(text)}
    if kind == "python":
        tokens |= {token.replace("_", "-") for token in tokens}
    return tokens


def frameworks_in(kind: str, text: str) -> set[str]:
    """Frameworks and libraries named by the dependencies of one manifest."""
    table = _FRAMEWORKS.get(kind, {})
    found: set[str] = set()
    for name in dependency_names(kind, text):
        for key, label in table.items():
            if name == key or (name.startswith(key) and name[len(key)] in _SEPARATORS):
                found.add(label)
    return found


def detect_repo_context(
    repo: str,
    paths: Iterable[str],
    read: Callable[[str], str | None],
    instructions: str = "",
) -> RepoContext:
    """Describe a repository from its file list, reading at most MAX_MANIFESTS_READ manifests."""
    languages: Counter[str] = Counter()
    manifests: dict[str, str] = {}
    security: list[str] = []
    for path in paths:
        parts = tuple(path.split("/"))
        if _skipped(parts):
            continue
        language = language_of(path)
        if language:
            languages[language] += 1
        kind = manifest_kind(path)
        if kind is not None:
            manifests[path] = kind
        if is_security_relevant(path):
            security.append(path)
    frameworks: set[str] = set()
    readable = [p for p, kind in manifests.items() if kind]
    for path in _shallowest(readable, MAX_MANIFESTS_READ):
        text = read(path)
        if text:
            frameworks |= frameworks_in(manifests[path], text[:MAX_MANIFEST_BYTES])
    return RepoContext(
        repo=repo,
        languages=select_languages(languages),
        frameworks=tuple(sorted(frameworks)),
        manifests=tuple(sorted(_shallowest(manifests, MAX_MANIFESTS))),
        security_files=tuple(sorted(_shallowest(security, MAX_SECURITY_FILES))),
        instructions=instructions,
    )


def _git_files(root: Path) -> list[str] | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        # Fixed argument list, no shell: the only input is the directory we run in.
        done = subprocess.run(  # noqa: S603
            [git, "-C", str(root), "ls-files", "-z", "--cached"],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    files = [name for name in done.stdout.decode("utf-8", "replace").split("\0") if name]
    return files or None


def _walk_files(root: Path) -> Iterator[str]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        base = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            count += 1
            if count > MAX_WALK_FILES:
                return
            yield (base / name).as_posix()


def list_files(root: Path) -> list[str]:
    """Repository-relative POSIX paths: ``git ls-files`` in a work tree, else a filtered walk."""
    return _git_files(root) or list(_walk_files(root))


def _reader(root: Path) -> Callable[[str], str | None]:
    resolved = root.resolve()

    def read(path: str) -> str | None:
        target = (resolved / path).resolve()
        # A symlinked manifest must not make us read outside the tree.
        if not target.is_relative_to(resolved) or not target.is_file():
            return None
        try:
            with target.open("rb") as handle:
                return handle.read(MAX_MANIFEST_BYTES).decode("utf-8", "replace")
        except OSError:
            return None

    return read


def local_repo_context(root: Path, instructions: str = "") -> RepoContext:
    """The repository context of a local checkout or directory."""
    return detect_repo_context(
        root.resolve().name, list_files(root), _reader(root), instructions=instructions
    )
