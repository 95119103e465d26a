"""Shared fixtures: the real Redis on loopback (own database, flushed), repository paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_URL = os.environ.get("SECREVIEW_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests never see the developer's real credentials, model settings or cache directory."""
    # A cache of its own per test, outside the test's tmp_path (which tests walk as a tree).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    for name in list(os.environ):
        prefixes = ("GITHUB_", "CLOUDFLARE_", "OPENAI_", "SECREVIEW_", "WORKERS_AI_")
        if name.startswith(prefixes) and name != "SECREVIEW_UPDATE_GOLDEN":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    # Nor the developer's .env file (subprocesses inherit this too).
    monkeypatch.setenv("SECREVIEW_ENV_FILE", "")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in a test configures root logging on the standard error pytest captured for
    that test; the next test gets the handlers there were before, not a stream since closed."""
    import logging

    def ours(handler: logging.Handler) -> bool:
        return not type(handler).__module__.startswith("_pytest")

    root = logging.getLogger()
    handlers, level = [h for h in root.handlers if ours(h)], root.level
    yield
    root.handlers[:] = [h for h in root.handlers if not ours(h)] + handlers
    root.setLevel(level)


@pytest.fixture
def bandit_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths bandit analyzes during the test, in order (it still analyzes them)."""
    from bot.review import analyzers

    seen: list[str] = []
    real = analyzers.bandit_file

    def counted(path: str, source: bytes) -> tuple[list[object], str | None]:
        seen.append(path)
        return real(path, source)  # type: ignore[return-value]

    monkeypatch.setattr(analyzers, "bandit_file", counted)
    return seen


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A throwaway RSA key pair for the GitHub App (private PEM, public PEM)."""
    from tests.fakes.github import new_app_key

    return new_app_key()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis database for one test, empty before and after."""
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    try:
        yield TEST_REDIS_URL
    finally:
        client.flushdb()
        client.close()


# --- each test's report on its item, for fixtures that record outcomes (tests/test_faults.py) ---
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep the setup/call/teardown report as ``item.rep_<when>``."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
