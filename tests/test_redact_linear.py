"""Linear time for everything in bot/redact: structural (the engine cannot backtrack) and scaling
(work counted in characters handed to the engine, compared across input sizes: no clocks)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import bot.redact
from bot.redact import linear, rules
from bot.redact.redactor import redact_text


def _modules() -> Iterator[ModuleType]:
    for info in pkgutil.iter_modules(bot.redact.__path__):
        yield importlib.import_module(f"bot.redact.{info.name}")


def test_no_module_in_bot_redact_uses_a_backtracking_engine() -> None:
    for module in _modules():
        assert not any(value is re for value in vars(module).values()), module.__name__
        for name, value in vars(module).items():
            assert not isinstance(value, re.Pattern), f"{module.__name__}.{name} runs on re"


def test_every_pattern_is_re2() -> None:
    patterns = [
        v
        for m in _modules()
        for v in vars(m).values()
        if hasattr(v, "finditer") and not isinstance(v, ModuleType | type)
    ]
    assert len(patterns) > 20
    assert all(linear.is_linear(p) for p in patterns)
    assert all(linear.is_linear(d.pattern) for d in rules.DETECTORS)
    assert linear.is_linear(rules.PREFILTER) and linear.is_linear(rules.KEYWORDS)


@pytest.mark.parametrize("construct", [r"(a)\1", r"(?<!a)b", r"a(?=b)", r"(?>a+)b"])
def test_the_engine_refuses_what_could_backtrack(construct: str) -> None:
    with pytest.raises(Exception):  # noqa: B017 - re2's error type carries no detail
        linear.compile(construct)


def test_programs_stay_small_enough_for_the_dfa() -> None:
    # Counted repetitions are unrolled: a bound like {12,400} on four alternatives made the DFA
    # run out of memory and fall back to the slower NFA (still linear, but 10x slower).
    assert max(d.pattern.programsize for d in rules.DETECTORS) < 5000


class Counter:
    """Characters handed to the regex engine, by wrapping every compiled pattern's entry points."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chars = 0
        self.calls = 0
        for method in ("finditer", "search", "fullmatch", "match", "test", "full", "findall"):
            original = getattr(linear.Regex, method)
            monkeypatch.setattr(linear.Regex, method, self._wrap(original))
        original_lines = linear.Regex.lines
        monkeypatch.setattr(linear.Regex, "lines", self._wrap(original_lines))

    def _wrap(self, original: Any) -> Any:
        def counted(regex: linear.Regex, text: Any, *args: Any, **kw: Any) -> Any:
            self.chars += len(text)
            self.calls += 1
            return original(regex, text, *args, **kw)

        return counted


HOSTILE = {
    "spaces and hashes": lambda n: " " * n + "#" * n,
    "assignment padding": lambda n: "password" + " " * n + "= x",
    "operators": lambda n: "token=" * (n // 6),
    "url fragments": lambda n: "://a:b" * (n // 6),
    "pem markers": lambda n: "-----BEGIN RSA PRIVATE KEY-----\n" * (n // 32),
    "keys on one line": lambda n: ("AK" + "IA" + "Q3EGRTZKXW7BNJ5V ") * (n // 21),
    "quotes": lambda n: 'api_key = "' + "a" * n,
    "identifiers": lambda n: "secret_" * (n // 7) + " = 'x'",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_work_grows_linearly_with_the_input(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter(monkeypatch)
    work = []
    for n in (20_000, 40_000, 80_000):
        counter.chars = counter.calls = 0
        redact_text(HOSTILE[name](n))
        work.append(counter.chars)
    # Doubling the input at most doubles (plus slack) what the engine reads, each time.
    assert work[1] <= 2.3 * work[0] + 1000 and work[2] <= 2.3 * work[1] + 1000, work
    assert work[2] <= 60 * 80_000 * 2  # a bounded number of passes over the text


def test_a_60k_pr_body_is_read_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter(monkeypatch)
    body = ("password " + " " * 100 + "\n" + "# " * 50 + "\n") * 300
    redact_text(body)
    assert counter.chars <= 40 * len(body)
