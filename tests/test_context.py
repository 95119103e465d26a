"""Tests of bot/context.py: repository context from a real file tree and from path lists."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bot.review import context
from bot.review.context import detect_repo_context, local_repo_context

TREE = {
    "app/__init__.py": "",
    "app/views.py": "from flask import Flask\n",
    "app/models.py": "from sqlalchemy import Column\n",
    "app/settings.py": "DEBUG = False\n",
    "app/auth/__init__.py": "",
    "app/auth/login.py": "def login(): ...\n",
    "app/author.py": "# the author of a post, not authentication\n",
    "requirements.txt": "Flask==3.0.0\nSQLAlchemy>=2.0  # ORM\ngunicorn\n",
    "web/package.json": json.dumps(
        {"name": "web", "description": "next generation shop", "dependencies": {"express": "4"}}
    ),
    "web/server.js": "const express = require('express');\n",
    "web/routes/users.js": "module.exports = {};\n",
    "web/middleware/session.js": "module.exports = {};\n",
    "scripts/deploy.sh": "#!/bin/sh\n",
    ".github/workflows/ci.yml": "on: pull_request\n",
    "infra/main.tf": 'resource "aws_s3_bucket" "b" {}\n',
    "infra/variables.tf": 'variable "region" {}\n',
    "Dockerfile": "FROM python:3.11\n",
    "docs/auth.md": "# Authentication\n",
    "tests/test_auth.py": "def test_login(): ...\n",
    "node_modules/next/package.json": json.dumps({"dependencies": {"react": "18"}}),
    ".venv/lib/django/__init__.py": "",
}

EXPECTED_LANGUAGES = ("JavaScript", "Python", "Shell", "Terraform")
EXPECTED_FRAMEWORKS = ("Express", "Flask", "SQLAlchemy")
EXPECTED_MANIFESTS = (
    ".github/workflows/ci.yml",
    "Dockerfile",
    "infra/main.tf",
    "infra/variables.tf",
    "requirements.txt",
    "web/package.json",
)
EXPECTED_SECURITY = (
    ".github/workflows/ci.yml",
    "Dockerfile",
    "app/auth/__init__.py",
    "app/auth/login.py",
    "app/settings.py",
    "infra/main.tf",
    "infra/variables.tf",
    "web/middleware/session.js",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    for rel, text in TREE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def test_plain_directory_is_walked(tree: Path) -> None:
    ctx = local_repo_context(tree, instructions="Focus on app/auth.")
    assert ctx.repo == "shop"
    assert ctx.languages == EXPECTED_LANGUAGES
    assert ctx.frameworks == EXPECTED_FRAMEWORKS
    assert ctx.manifests == EXPECTED_MANIFESTS
    assert ctx.security_files == EXPECTED_SECURITY
    assert ctx.instructions == "Focus on app/auth."


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_work_tree_lists_tracked_files_only(tree: Path) -> None:
    git(tree, "init", "-q")
    git(tree, "add", "--", *[p for p in TREE if not p.startswith((".venv/", "node_modules/"))])
    (tree / "app/auth/untracked_tokens.py").write_text("", encoding="utf-8")
    ctx = local_repo_context(tree)
    assert ctx.security_files == EXPECTED_SECURITY
    assert ctx.frameworks == EXPECTED_FRAMEWORKS
    assert ctx.manifests == EXPECTED_MANIFESTS


def test_detection_is_deterministic(tree: Path) -> None:
    first = local_repo_context(tree)
    assert local_repo_context(tree) == first
    paths = context.list_files(tree)
    random.Random(7).shuffle(paths)
    read = context._reader(tree)
    assert detect_repo_context("shop", paths, read) == first
    assert detect_repo_context("shop", reversed(paths), read) == first


def test_symlinked_manifest_outside_the_tree_is_not_read(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"dependencies": {"koa": "2"}}), encoding="utf-8")
    (tree / "api").mkdir()
    (tree / "api/package.json").symlink_to(outside)
    ctx = local_repo_context(tree)
    assert "api/package.json" in ctx.manifests
    assert "Koa" not in ctx.frameworks


def test_language_cutoff() -> None:
    go = [f"pkg/p{i}.go" for i in range(200)]

    def languages(paths: list[str]) -> tuple[str, ...]:
        return detect_repo_context("r", paths, lambda _: None).languages

    assert languages([*go, "deploy.sh"]) == ("Go",)
    assert languages([*go, "a.sh", "b.sh", "c.sh"]) == ("Go", "Shell")
    assert languages(["main.py", "run.sh"]) == ("Python", "Shell")
    exts = (".py", ".go", ".rs", ".rb", ".php", ".java", ".c", ".cs", ".swift")
    many = [f"src/f{i}{ext}" for ext in exts for i in range(5)]
    assert len(languages(many)) == context.MAX_LANGUAGES


def test_manifest_reads_are_capped() -> None:
    paths = [f"svc{i:03}/requirements.txt" for i in range(100)] + ["requirements.txt"]
    reads: list[str] = []

    def read(path: str) -> str:
        reads.append(path)
        return " " * context.MAX_MANIFEST_BYTES + "django\n" if path == "requirements.txt" else ""

    ctx = detect_repo_context("r", paths, read)
    assert len(reads) == context.MAX_MANIFESTS_READ
    assert reads[0] == "requirements.txt"  # the root manifest is read first
    assert ctx.frameworks == ()  # the name lies beyond the byte cap
    assert len(ctx.manifests) == context.MAX_MANIFESTS
    assert ctx.manifests[0] == "requirements.txt"


def test_security_files_are_capped_shallowest_first() -> None:
    paths = [f"a/b/c/auth{i:03}.py" for i in range(100)] + ["login.py", "x/session.go"]
    ctx = detect_repo_context("r", paths, lambda _: None)
    assert len(ctx.security_files) == context.MAX_SECURITY_FILES
    assert "login.py" in ctx.security_files
    assert "x/session.go" in ctx.security_files
    assert list(ctx.security_files) == sorted(ctx.security_files)


def test_large_tree_stays_cheap() -> None:
    rng = random.Random(1)
    exts = (".go", ".py", ".ts", ".md", ".yml", ".json", ".sh")
    paths = [
        f"m{rng.randint(0, 400)}/d{rng.randint(0, 30)}/f{i}{rng.choice(exts)}"
        for i in range(20_000)
    ]
    paths += [f"m{i}/package.json" for i in range(300)]
    reads: list[str] = []

    def read(path: str) -> None:
        reads.append(path)

    start = time.perf_counter()
    detect_repo_context("big", paths, read)
    assert time.perf_counter() - start < 3.0
    assert len(reads) == context.MAX_MANIFESTS_READ


@pytest.mark.parametrize(
    ("path", "relevant"),
    [
        ("src/AuthService.java", True),
        ("app/author.py", False),
        ("internal/crypto/aes.go", True),
        ("lib/passwordReset.ts", True),
        ("app/csrf.py", True),
        ("deploy/nginx.conf", True),
        ("config/settings.py", True),
        ("docs/security.md", False),
        ("tests/test_login.py", False),
        ("src/utils/strings.py", False),
        ("k8s/deployment.yaml", True),
    ],
)
def test_security_relevance(path: str, relevant: bool) -> None:
    assert context.is_security_relevant(path) is relevant


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("requirements-dev.txt", "python"),
        ("requirements/base.txt", "python"),
        ("backend/pyproject.toml", "python"),
        ("Pipfile", "python"),
        ("go.mod", "go"),
        ("Cargo.toml", "rust"),
        ("pom.xml", "java"),
        ("build.gradle.kts", "java"),
        ("Gemfile", "ruby"),
        ("composer.json", "php"),
        ("src/Api/Api.csproj", "dotnet"),
        ("docker/api.Dockerfile", ""),
        ("docker-compose.prod.yml", ""),
        (".github/workflows/release.yaml", ""),
        ("charts/app/templates/deploy.yaml", ""),
        ("src/main.py", None),
        ("docs/requirements.md", None),
        ("app/.github/workflows/x.yml", None),
    ],
)
def test_manifest_kind(path: str, kind: str | None) -> None:
    assert context.manifest_kind(path) == kind


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("go", "module x\nrequire (\n\tgithub.com/labstack/echo/v4 v4.11.0\n\tgorm.io/gorm v1\n)",
         {"Echo", "GORM"}),
        ("java", "<groupId>org.springframework.boot</groupId><groupId>org.hibernate.orm</groupId>",
         {"Spring", "Hibernate"}),
        ("java", 'implementation("org.springframework.boot:spring-boot-starter-web:3.2.0")',
         {"Spring"}),
        ("rust", '[dependencies]\naxum = "0.7"\nsqlx = { version = "0.7" }\n', {"Axum", "SQLx"}),
        ("ruby", "source 'https://rubygems.org'\ngem 'rails', '~> 7.1'\n", {"Rails"}),
        ("php", '{"require": {"laravel/framework": "^11"}, "description": "symfony-like"}',
         {"Laravel"}),
        ("dotnet", '<Project Sdk="Microsoft.NET.Sdk.Web"><PackageReference '
         'Include="Microsoft.EntityFrameworkCore" /></Project>',
         {"ASP.NET Core", "Entity Framework Core"}),
        ("python", '[project]\ndependencies = ["fastapi>=0.11", "Jinja2"]', {"FastAPI", "Jinja2"}),
        ("python", "flaskr==1\nflask-cors==4\n", {"Flask"}),  # extensions imply Flask
        ("node", '{"dependencies": {"next": "14", "@prisma/client": "5"}}', {"Next.js", "Prisma"}),
        ("node", '{"scripts": {"start": "next start"}}', set()),
        ("node", "{not json, but names express}", {"Express"}),
    ],
)  # fmt: skip
def test_frameworks_in(kind: str, text: str, expected: set[str]) -> None:
    assert context.frameworks_in(kind, text) == expected
