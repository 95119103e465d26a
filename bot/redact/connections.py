"""Credentials inside connection strings: URLs with a password, DSNs and driver arguments in the
syntaxes of the major languages, command-line passwords, and Azure connection strings.

A URL password is the value between ``user:`` and ``@host``; a Go MySQL DSN has no scheme
(``user:pass@tcp(host)/db``); PHP passes the password as PDO's third argument; .NET and JDBC
strings carry ``Password=`` (found by the generic detector, whose name check covers them).
"""

from __future__ import annotations

from bot.redact.detector import BASE64, Detector, check_random, is_public_example
from bot.redact.linear import Match, group, has
from bot.redact.linear import compile as _rx
from bot.redact.values import is_placeholder

# Passwords that documentation and local development defaults use: scott:tiger, guest:guest.
_DOC_PASSWORDS = frozenset((
    "pass", "password", "passwd", "pwd", "pw", "secret", "token", "guest", "postgres", "root",
    "admin", "tiger", "test", "mysql", "redis", "user", "changeme", "example", "mypassword",
))  # fmt: skip
_DOC_HOSTS = ("example.com", "example.org", "example.net", ".example", ".test", ".invalid")
_CONSTANT_NAME = _rx(r"[A-Za-z]+(?:_[A-Za-z]+)+")


def _plausible_password(value: str, user: str) -> bool:
    if value == user or value.lower() in _DOC_PASSWORDS or len(value) < 4:
        return False
    if "[REDACTED:" in value or _CONSTANT_NAME.full(value):
        return False
    return not is_placeholder(value)


def _check_url_password(m: Match, value: str) -> bool:
    host = (group(m, "host") or "").lower()
    if host in ("", "example") or host.endswith(_DOC_HOSTS):
        return False  # RFC 2606 documentation hosts
    return _plausible_password(value, group(m, "user") or "")


def _check_password(m: Match, value: str) -> bool:
    user = group(m, "user") if has(m, "user") else ""
    return _plausible_password(value, user or "")


def _check_account_key(m: Match, value: str) -> bool:
    return not is_public_example(value) and check_random(m, value)


_LOGIN = (
    "log in to the service the string names (database, message broker, proxy or registry) with "
    "the embedded credentials"
)
_AZURE = (
    "read, change and delete everything in the storage account or messaging namespace — blobs, "
    "queues, tables, files — with the account's own key"
)
_Q = "\"'`"

CONNECTIONS: tuple[Detector, ...] = (
    Detector(
        "url-password", "password in a URL", "url",
        _rx(r"://(?P<user>[^\s:/?#@'\"<>\[\]`]*):(?P<v>[^\s/?#@'\"<>`]+)@"
            r"(?P<host>[^\s/?#@'\":<>`]*[A-Za-z0-9])"),
        False, _LOGIN, _check_url_password,
    ),
    Detector(
        "dsn-password", "password in a database DSN", "dsn",
        _rx(r"(?P<user>[A-Za-z0-9_.$-]{1,64}):(?P<v>[^\s@:/'\"`]{1,128})@(?:tcp6?|unix)\("),
        False, _LOGIN, _check_password, edge="",
    ),
    Detector(
        "pdo-password", "database password in a driver call", "pdo",
        _rx(r"(?:PDO|mysqli|mysqli_connect|mysql_connect)[ \t]*\("
            r"(?:[ \t]*(?:\"[^\"\n]*\"|'[^'\n]*'|\$[A-Za-z_]\w*)[ \t]*,){1,2}[ \t]*"
            r"[\"'](?P<v>[^\"'\n]{4,200})[\"']"),
        False, _LOGIN, _check_password,
    ),
    Detector(
        "cli-password", "password on a command line", "cli",
        _rx(r"(?:curl|wget|http|https)[ \t][^\n]{0,200}?(?:-u|--user)[ \t=]+['\"]?"
            rf"(?P<user>[^\s:{_Q}]+):(?P<v>[^\s{_Q}@]+)"),
        False, _LOGIN, _check_password,
    ),
    Detector(
        "cli-password", "password on a command line", "cli",
        _rx(r"(?:mysql|mysqldump|psql|mongo|mongosh|redis-cli)[ \t][^\n]{0,200}?"
            rf"(?:[ \t]-p|--password=|[ \t]-a[ \t]+)(?P<v>[^\s{_Q}-][^\s{_Q}]*)"),
        False, _LOGIN, _check_password,
    ),
    Detector(
        "cli-password", "password on a command line", "cli",
        _rx(rf"sshpass[ \t]+-p[ \t]*(?:'(?P<sq>[^'\n]+)'|\"(?P<dq>[^\"\n]+)\""
            rf"|(?P<v>[^\s{_Q}-][^\s{_Q}]*))"),
        False, _LOGIN, _check_password,
    ),
    Detector(
        "azure-storage-key", "Azure storage or Service Bus key", "azure",
        _rx(r"(?:AccountKey|SharedAccessKey|SharedSecretValue)[ \t]*=[ \t]*"
            rf"(?P<v>[{BASE64}]{{20,100}}={{0,2}})"),
        True, _AZURE, _check_account_key,
    ),
)  # fmt: skip
