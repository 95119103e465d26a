"""The last guard before egress: a request body that still holds a secret is never sent.

Every body the bot sends (each Workers AI run and each request of a batch, OpenAI-compatible
requests, and everything posted to GitHub) passes ``check`` just before it leaves. It looks for
the values the current run detected (when this process has them: ``guarding``) and always runs
the high-confidence detectors (provider formats with prefixes or checksums, private keys), so a
secret that slipped past redaction upstream, whatever the reason, is still caught here. A hit
names the kind of secret, never the value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from bot.redact.redactor import confident_kind


class ValueSet(Protocol):
    """Secret values to look for (``bot.redact.run.Values``)."""

    def find(self, text: str) -> str | None: ...


_RUN: ContextVar[ValueSet | None] = ContextVar("secreview_run_values", default=None)


@contextmanager
def guarding(values: ValueSet) -> Iterator[None]:
    """Within this block (this thread or task), ``check`` also looks for ``values``."""
    token = _RUN.set(values)
    try:
        yield
    finally:
        _RUN.reset(token)


def check_text(text: str) -> str | None:
    """The kind of secret ``text`` holds — a run value or a high-confidence format — or None."""
    values = _RUN.get()
    if values is not None:
        kind = values.find(text)
        if kind is not None:
            return kind
    return confident_kind(text)


def check(body: bytes) -> str | None:
    """The kind of secret a serialised request body holds, or None when it may be sent.

    A JSON body is checked string by string, unescaped: in the raw bytes a token at the start of
    a line follows the letter of a ``\\n`` escape, which would hide its word boundary.
    """
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return check_text(text)
    return check_text("\n".join(_strings(data)))


def _strings(data: Any) -> Iterator[str]:
    """Every string in a JSON value (keys included), depth first."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for key, value in item.items():
                yield str(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
