"""Log lines with their context: ``key=value`` pairs for the identities a line carries.

Pass identities with ``extra={"repo": ..., "pr": ..., "head_sha": ...}``; never a token, a diff
or a prompt. ``LOG_FORMAT=json`` (read by ``Settings``) gives one JSON object per line instead.
"""

from __future__ import annotations

import json
import logging
import sys

CONTEXT = (
    "delivery_id",
    "installation_id",
    "repo",
    "pr",
    "head_sha",
    "prefix_sha",
    "units",
    "findings",
    "outcome",
)


class ContextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [f"{k}={getattr(record, k)}" for k in CONTEXT if hasattr(record, k)]
        return f"{line} {' '.join(pairs)}" if pairs else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{k: getattr(record, k) for k in CONTEXT if hasattr(record, k)},
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


# Libraries that log every request at INFO (httpx: "HTTP Request: POST ... 200 OK"): quiet
# unless LOG_LEVEL=DEBUG asks for everything.
NOISY = ("httpx", "httpcore", "urllib3", "github", "dotenv", "multipart", "watchfiles")


def configure(level: str, fmt: str = "text") -> None:
    """Root logging on standard error, in ``fmt`` (``text`` or ``json``); chatty libraries
    log warnings only unless ``level`` is DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
