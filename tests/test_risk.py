"""Risk routing: what needs no model call, and which paths are always reviewed first."""

from __future__ import annotations

import pytest

from bot import diff as diffmod
from bot.review import risk
from bot.review.plan import PlanOptions, plan_files
from bot.review.prompts import RepoContext


@pytest.mark.parametrize(
    "paths",
    [
        ["README.md"],
        ["docs/guide.rst", "docs/img/flow.png", "CHANGELOG.md"],
        ["poetry.lock", "package-lock.json", "yarn.lock"],
        ["AUTHORS", "LICENSE", "docs/authors.md"],
        ["notes.txt", "assets/font.woff2"],
    ],
)
def test_docs_media_and_lockfiles_need_no_model(paths: list[str]) -> None:
    decision = risk.route(paths)
    assert not decision.needs_model and decision.sensitive == ()
    assert decision.reason == "only documentation, media or lockfiles changed"


@pytest.mark.parametrize(
    "paths",
    [
        ["README.md", "app/views.py"],
        ["requirements.txt"],  # a dependency manifest, not prose
        ["requirements-dev.txt", "README.md"],
        ["CMakeLists.txt"],
        ["static/logo.svg"],  # SVG can carry script
        ["pyproject.toml"],
        [],  # nothing to judge: review as usual
    ],
)
def test_code_manifests_and_svg_need_the_model(paths: list[str]) -> None:
    assert risk.route(paths).needs_model


@pytest.mark.parametrize(
    "path",
    [
        ".github/workflows/release.yml",
        "app/auth/views.py",
        "app/oauth_callback.py",
        "accounts/login.py",
        "core/crypto.py",
        "settings/secrets.py",
        "api/token_store.go",
        "deploy/Dockerfile",
        "Dockerfile.prod",
        "web.dockerfile",
        "Containerfile",
        "docker-compose.prod.yml",
        "infra/main.tf",
        "infra/prod.tfvars",
        "helm/values.yaml",
        "db/migrations/0007_users.py",
        "db/migrate/20240101_add_role.rb",
        ".github/secreview.yml",
        ".gitlab-ci.yml",
        "Jenkinsfile",
        ".env.production",
        "certs/server.pem",
    ],
)
def test_sensitive_paths(path: str) -> None:
    assert risk.is_sensitive(path)
    decision = risk.route(["README.md", path])
    assert decision.needs_model and decision.sensitive == (path,)


@pytest.mark.parametrize(
    "path", ["AUTHORS", "docs/authors.md", "app/author.py", "app/views.py", "README.md"]
)
def test_ordinary_paths_are_not_sensitive(path: str) -> None:
    assert not risk.is_sensitive(path)


def _diff(paths: list[str], lines: int = 60) -> str:
    body = "".join(
        f"+value_{n} = compute({n}, 'some text to fill the unit')\n" for n in range(lines)
    )
    return "".join(
        f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1,1 +1,{lines + 1} @@\n x = 1\n{body}"
        for p in paths
    )


def test_sensitive_files_go_first_and_survive_a_unit_cap() -> None:
    paths = [f"app/mod{i}.py" for i in range(6)] + [
        "app/auth/session.py",
        ".github/workflows/ci.yml",
    ]
    files = diffmod.parse_diff(_diff(paths)).files
    ordered = risk.sensitive_first(files)
    assert [f.path for f in ordered[:2]] == ["app/auth/session.py", ".github/workflows/ci.yml"]
    assert [f.path for f in ordered[2:]] == paths[:6]  # stable otherwise
    # With room for two units out of eight, the units kept hold the sensitive files.
    options = PlanOptions(budget_tokens=2000, max_units=2)
    plan = plan_files(ordered, repo=RepoContext(repo="o/r"), options=options)
    kept = set(plan.reviewed)
    assert plan.skipped and len(kept) < len(paths)  # the cap really dropped files
    assert {"app/auth/session.py", ".github/workflows/ci.yml"} <= kept
    assert not {"app/auth/session.py", ".github/workflows/ci.yml"} & {s.path for s in plan.skipped}
