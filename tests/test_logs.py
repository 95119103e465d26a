"""Log lines carry their identities; LOG_FORMAT and LOG_LEVEL are validated."""

from __future__ import annotations

import json
import logging

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.logs import ContextFormatter, JsonFormatter


def record() -> logging.LogRecord:
    rec = logging.LogRecord(
        "secreview.pipeline", logging.INFO, __file__, 1, "review %s", ("published",), None
    )
    rec.repo, rec.pr, rec.head_sha = "octo/shop", 7, "a" * 40
    return rec


def test_text_lines_end_with_their_identities() -> None:
    line = ContextFormatter("%(levelname)s %(message)s").format(record())
    assert line == f"INFO review published repo=octo/shop pr=7 head_sha={'a' * 40}"


def test_json_lines() -> None:
    data = json.loads(JsonFormatter().format(record()))
    assert data["message"] == "review published" and data["pr"] == 7 and data["level"] == "INFO"


def test_settings() -> None:
    assert Settings.from_env({"LOG_FORMAT": "JSON", "LOG_LEVEL": "debug"}).log_format == "json"
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        Settings.from_env({"LOG_LEVEL": "loud"})
