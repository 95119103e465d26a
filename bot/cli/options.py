"""Option values checked before any work starts: ports, public URLs, output paths, state dirs.

Each check raises ``UsageError`` with one line naming the option, so a bad value costs nothing:
it is refused before a diff is parsed, a repository walked or a model paid.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from urllib.parse import urlsplit

from bot.errors import UsageError


def port(text: str) -> int:
    """An argparse ``type`` for a TCP port: 1 to 65535 (0 would pick a random one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (1-65535)")
    return value


def dollars(text: str) -> float:
    """An argparse ``type`` for a cost cap in US dollars: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dollar amount") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dollar amount of at least 0")
    return value


def public_url(text: str) -> str:
    """An argparse ``type`` for a public base URL: ``https://host[:port][/path]``, no query."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a URL: give the scheme and host, e.g. https://secreview.example.com"
        )
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r} must not carry a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError for an out-of-range port
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    return text.strip().rstrip("/")


def writable_output(path: str | None, option: str = "--output") -> None:
    """Refuse an output path that cannot be written, before anything is paid for."""
    if path is None or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path!r} is a directory; give a file name")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {path!r}: the directory {str(parent)!r} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path!r} is not writable")
    if not target.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path!r}: cannot create files in {str(parent)!r}")


def state_dir(path: Path, option: str = "--state-dir") -> None:
    """A directory that exists (or can be created) and is writable."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{option} {str(path)!r} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {str(path)!r} is not writable")
