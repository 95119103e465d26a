"""Model API errors as values: Workers AI / OpenAI error bodies → the typed ``bot.errors`` tree.

Pure (no I/O): ``bot.llm`` calls it on every failed response. Cloudflare's error codes are matched
before the HTTP status, because one status carries several meanings (429 is both "out of
capacity, retry" and "daily quota used up, stop").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.errors import (
    ModelCapacity,
    ModelError,
    ModelQuotaExceeded,
    ModelTimeout,
    ModelUnavailable,
    PayloadTooLarge,
)

# Workers AI error codes (Cloudflare "Workers AI errors" reference); matched before HTTP status.
_BY_CODE: Mapping[int, tuple[type[ModelError], str | None]] = {
    3040: (ModelCapacity, None),
    3036: (ModelQuotaExceeded, None),
    3007: (ModelTimeout, None),
    3006: (PayloadTooLarge, None),
    5007: (ModelUnavailable, None),
    3042: (ModelUnavailable, None),
    5035: (ModelUnavailable, "model_plan_required"),
    10000: (ModelError, "model_auth"),
}
_BY_STATUS: Mapping[int, tuple[type[ModelError], str | None]] = {
    429: (ModelCapacity, None),
    408: (ModelTimeout, None),
    413: (PayloadTooLarge, None),
    401: (ModelError, "model_auth"),
    403: (ModelError, "model_auth"),
}


def errors_of(data: Any) -> list[tuple[int | None, str]]:
    """``(code, message)`` pairs from a Cloudflare envelope or an OpenAI-style error body."""
    if not isinstance(data, Mapping):
        return []
    raw = data.get("errors")
    items: list[Any] = list(raw) if isinstance(raw, list) else []
    if isinstance(data.get("error"), Mapping | str):
        items.append(data["error"])
    out: list[tuple[int | None, str]] = []
    for item in items:
        if isinstance(item, str):
            out.append((None, item))
        elif isinstance(item, Mapping):
            out.append((_code(item.get("code")), str(item.get("message") or "")))
    return out


def _code(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _classify(code: int | None, status: int | None) -> tuple[type[ModelError], str | None]:
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if status is not None and status in _BY_STATUS:
        return _BY_STATUS[status]
    return ModelError, None


def map_error(
    status: int | None, errors: Sequence[tuple[int | None, str]], *, service: str, secret: str = ""
) -> ModelError:
    """The typed error for a failed call: by ``errors[].code`` first, HTTP status second."""
    known = [e for e in errors if e[0] is not None and e[0] in _BY_CODE]
    code, message = (known or list(errors) or [(None, "")])[0]
    cls, reason = _classify(code, status)
    parts = [f"{service} error"]
    if code is not None:
        parts.append(f"{code}")
    if status is not None:
        parts.append(f"(HTTP {status})")
    text = " ".join(parts) + (f": {message}" if message else "")
    exc = cls(scrub(text, secret), reason=reason, code=code, status=status)
    if cls is ModelError and reason is None and status is not None and status >= 500:
        exc.retryable = True  # a 5xx from the gateway is usually transient
    return exc


def scrub(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced, for messages that might echo a credential."""
    return text.replace(secret, "[redacted]") if secret else text


def batch_error(response: Mapping[str, Any], secret: str) -> str:
    """``"<reason>: <message>"`` for one failed response of a batch."""
    errors = errors_of(response) or errors_of(response.get("result"))
    if not errors:
        return "model: the request failed without details"
    exc = map_error(None, errors, service="Workers AI", secret=secret)
    return f"{exc.reason}: {exc}"
