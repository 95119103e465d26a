"""One decision of what a path is for, shared by the policy, the scan, the router and secrets."""

from __future__ import annotations

import pytest

from bot.paths import is_prose, off_target
from bot.redact.report import is_test_path
from bot.review.exclusions import is_test_or_docs
from bot.review.risk import is_low_risk


@pytest.mark.parametrize(
    ("path", "purpose"),
    [
        ("tests/test_views.py", "test code"),
        ("pkg/tests/unit/helpers.py", "test code"),
        ("src/test/java/com/x/AppTest.java", "test code"),
        ("js_tests/admin/core.test.js", "test code"),
        ("integration-tests/run.sh", "test code"),
        ("end_to_end_tests/login.py", "test code"),
        ("app/__mocks__/api.ts", "test code"),
        ("app/__snapshots__/view.snap", "test code"),
        ("internal/testdata/input.json", "test code"),
        ("spec/models/user_spec.rb", "test code"),
        ("web/button.spec.tsx", "test code"),
        ("server/handler_test.go", "test code"),
        ("conftest.py", "test code"),
        ("examples/flask/app.py", "example code"),
        ("sample/main.go", "example code"),
        ("docs/conf.py", "documentation"),
        ("README", "documentation"),
        ("README.md", "documentation"),
        ("CHANGES.rst", "documentation"),
        ("LICENSE.python", "documentation"),
        ("COPYING.LESSER", "documentation"),
        ("PKG-INFO", "documentation"),
        ("test/units/modules/test_copy.py", "test code"),
        ("core/src/test/java/com/x/AppTest.java", "test code"),
        ("unit_test/runner.c", "test code"),
        ("app/views.py", None),
        ("django/test/client.py", None),  # library code for testing: it ships
        ("lib/ansible/plugins/test/core.py", None),  # Jinja2 test plugins
        ("lib/ansible/module_utils/common/arg_spec.py", None),  # a specification, not RSpec
        ("api/spec/openapi.py", None),
        ("app/latest/views.py", None),  # "test" inside a word is not a test directory
        ("app/contest/views.py", None),
        ("app/testing_utils.py", None),
        ("requirements.txt", None),
        ("requirements-dev.txt", None),
        ("CMakeLists.txt", None),
        ("licensing/license.py", None),  # code named after a licence
        ("app/changes.py", None),
        ("Dockerfile", None),
    ],
)
def test_what_a_path_is_for(path: str, purpose: str | None) -> None:
    assert off_target(path) == purpose
    # Every part asks the same question the same way.
    assert is_test_or_docs(path) is (purpose is not None)
    assert is_test_path(path) is (purpose == "test code")
    if is_prose(path):
        assert is_low_risk(path) and purpose == "documentation"


def test_prose_is_low_risk_and_manifests_are_not() -> None:
    assert is_low_risk("docs/guide.txt") and is_low_risk("AUTHORS") and is_low_risk("logo.png")
    assert not is_low_risk("requirements.txt") and not is_low_risk("app/views.py")
    assert not is_low_risk("docs/conf.py")  # code in a docs tree still goes to the model in a PR


def test_every_pattern_is_linear_time() -> None:
    """Paths come from outsiders: RE2 (bot.redact.linear), never a backtracking engine."""
    import bot.paths
    from bot.redact.linear import Regex

    patterns = [v for k, v in vars(bot.paths).items() if k.isupper() or k.startswith("_")]
    compiled = [p for p in patterns if hasattr(p, "pattern")]
    assert len(compiled) >= 6 and all(isinstance(p, Regex) for p in compiled)


@pytest.mark.parametrize(
    ("path", "purpose"),
    [
        ("a" * 200_000, None),
        ("/".join(["tests"] * 40_000), "test code"),
        ("-".join(["a"] * 100_000) + "/x.py", None),
        ("a_" * 100_000 + "tests/x.py", "test code"),
        ("LICENSE-" + "x" * 200_000, "documentation"),
        ("é/" * 50_000 + "docs/x.py", "documentation"),
    ],
)
def test_huge_and_hostile_paths(path: str, purpose: str | None) -> None:
    assert off_target(path) == purpose
