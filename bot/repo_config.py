"""``.github/secreview.yml`` from the base branch, parsed into a frozen, allowlisted RepoConfig."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from bot.diff import FilterRules
from bot.errors import ConfigError
from bot.findings import SEVERITY_RANK

CONFIG_PATH = ".github/secreview.yml"
MAX_CONFIG_BYTES = 64 * 1024
MAX_INSTRUCTIONS_CHARS = 4000
MAX_YAML_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Suppression:
    """A fingerprint the maintainers ignored or accepted as a risk (until a date, if given)."""

    fingerprint: str
    reason: str
    until: dt.date | None = None

    def active(self, today: dt.date) -> bool:
        """Whether the suppression still applies on ``today`` (expired acceptances come back)."""
        return self.until is None or today <= self.until


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """The repository's review settings; unknown keys are rejected so typos are visible."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    instructions: str = ""
    fail_on: str = "high"
    comment_threshold: str = "low"
    review_drafts: bool = False
    max_inline_comments: int = 30
    max_cost_usd: float | None = None
    verify: bool = False
    min_confidence: float = 0.5
    suppressions: tuple[Suppression, ...] = ()
    # Which file set each setting that was set (setting → file); empty: defaults throughout.
    provenance: tuple[tuple[str, str], ...] = ()
    # Problems with the organisation's shared file, said once in the review's summary.
    notes: tuple[str, ...] = ()
    # The check's conclusion when part of the model review is missing (model down, out of
    # capacity, deadline, budget): neutral by default so a model outage does not block every
    # merge of every repository; the severity gate still fails on whatever was found.
    on_incomplete: str = "neutral"

    @property
    def filter_rules(self) -> FilterRules:
        """Include/exclude globs for the diff filter."""
        return FilterRules(include=self.include, exclude=self.exclude)

    def suppressed(self, fingerprint: str, today: dt.date | None = None) -> Suppression | None:
        """The active suppression for ``fingerprint``, if any."""
        day = today or dt.date.today()
        for item in self.suppressions:
            if item.fingerprint == fingerprint and item.active(day):
                return item
        return None


_ALLOWED = {
    "include",
    "exclude",
    "instructions",
    "fail_on",
    "comment_threshold",
    "review_drafts",
    "max_inline_comments",
    "max_cost_usd",
    "verify",
    "min_confidence",
    "ignore",
    "accept_risk",
    "on_incomplete",
}


def _globs(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{CONFIG_PATH}: {key} must be a list of glob strings")
    return tuple(value)


def _severity(value: Any, key: str, default: str) -> str:
    if value is None:
        return default
    text = str(value).lower()
    if text not in SEVERITY_RANK and text != "none":
        raise ConfigError(f"{CONFIG_PATH}: {key} must be critical, high, medium, low or none")
    return text


def _number(value: Any, key: str, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{CONFIG_PATH}: {key} must be a number")
    if not low <= value <= high:
        raise ConfigError(f"{CONFIG_PATH}: {key} must be between {low} and {high}")
    return kind(value)


def _suppressions(data: Mapping[str, Any]) -> tuple[Suppression, ...]:
    items: list[Suppression] = []
    for key, dated in (("ignore", False), ("accept_risk", True)):
        entries = data.get(key) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{CONFIG_PATH}: {key} must be a list")
        for entry in entries:
            items.append(_suppression(entry, key, dated))
    return tuple(items)


def _suppression(entry: Any, key: str, dated: bool) -> Suppression:
    if isinstance(entry, dict) and isinstance(entry.get("fingerprint"), int | float):
        # YAML reads an all-digit fingerprint as a number (and 0-prefixed ones as octal).
        raise ConfigError(
            f"{CONFIG_PATH}: quote the {key} fingerprint {entry['fingerprint']!r} "
            "(for example '0123456789abcdef') so YAML keeps it as text"
        )
    if not isinstance(entry, dict) or not isinstance(entry.get("fingerprint"), str):
        raise ConfigError(f"{CONFIG_PATH}: each {key} entry needs a fingerprint")
    until = entry.get("until")
    if dated and not isinstance(until, dt.date):
        raise ConfigError(f"{CONFIG_PATH}: accept_risk entries need until: YYYY-MM-DD")
    return Suppression(
        fingerprint=entry["fingerprint"],
        reason=str(entry.get("reason", "")),
        until=until if dated else None,
    )


@functools.cache
def _plain_loader() -> Any:
    """PyYAML's safe loader without anchors and aliases, and with a nesting limit (loaded on
    first use: most reviews have no config file to read).

    An alias makes a few hundred bytes stand for gigabytes once anything walks the value (the
    "billion laughs"); nothing a config says needs one. Deep nesting would exhaust the stack.
    """
    import yaml

    class PlainLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise yaml.composer.ComposerError(
                    None, None, "anchors and aliases (& and *) are not allowed", event.start_mark
                )
            self.depth += 1
            try:
                if self.depth > MAX_YAML_DEPTH:
                    raise yaml.composer.ComposerError(
                        None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", event.start_mark
                    )
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return PlainLoader


def load_yaml(text: str | bytes) -> Any:
    """YAML text as plain data: size-capped, no anchors or aliases, no tags; else ConfigError."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{CONFIG_PATH} is larger than {MAX_CONFIG_BYTES} bytes")
    import yaml

    try:
        return yaml.load(text, Loader=_plain_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{CONFIG_PATH} is not valid YAML: {exc}".splitlines()[0]) from None


def parse_repo_config(text: str | bytes | None) -> RepoConfig:
    """Parse the config file's text; None or empty gives the defaults; bad content → ConfigError."""
    if not text:
        return RepoConfig()
    data = load_yaml(text)
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_PATH} must be a mapping of settings")
    unknown = sorted(set(map(str, data)) - _ALLOWED)
    if unknown:
        raise ConfigError(f"{CONFIG_PATH}: unknown setting(s): {', '.join(unknown)}")
    config = _build(data)
    return replace(config, provenance=tuple((key, CONFIG_PATH) for key in sorted(map(str, data))))


def _build(data: Mapping[str, Any]) -> RepoConfig:
    defaults = RepoConfig()
    instructions = data.get("instructions") or ""
    if not isinstance(instructions, str):
        raise ConfigError(f"{CONFIG_PATH}: instructions must be text")
    max_cost = data.get("max_cost_usd")
    return RepoConfig(
        include=_globs(data.get("include"), "include"),
        exclude=_globs(data.get("exclude"), "exclude"),
        instructions=instructions.strip()[:MAX_INSTRUCTIONS_CHARS],
        fail_on=_severity(data.get("fail_on"), "fail_on", defaults.fail_on),
        comment_threshold=_severity(
            data.get("comment_threshold"), "comment_threshold", defaults.comment_threshold
        ),
        review_drafts=bool(data.get("review_drafts", False)),
        max_inline_comments=_number(
            data.get("max_inline_comments", 30), "max_inline_comments", int, 0, 30
        ),
        max_cost_usd=None if max_cost is None else _number(max_cost, "max_cost_usd", float, 0, 1e6),
        verify=bool(data.get("verify", False)),
        min_confidence=_number(data.get("min_confidence", 0.5), "min_confidence", float, 0, 1),
        suppressions=_suppressions(data),
        on_incomplete=_on_incomplete(data.get("on_incomplete"), defaults.on_incomplete),
    )


def _on_incomplete(value: Any, default: str) -> str:
    if value is None:
        return default
    if value not in ("neutral", "failure"):
        raise ConfigError(f"{CONFIG_PATH}: on_incomplete must be neutral or failure")
    return str(value)


# --- organisation defaults (issue 13) --------------------------------------------------------
# A ``secreview.yml`` at the root of the organisation's (or user's) ``.github`` repository, on
# its default branch, gives every repository of the owner its defaults; a repository's own
# ``.github/secreview.yml`` (base branch) overrides it setting by setting.

ORG_CONFIG_REPO = ".github"
ORG_CONFIG_PATH = "secreview.yml"
DEFAULT_SOURCE = "default"


def org_config_label(owner: str) -> str:
    """How the summary names an owner's shared file: ``OWNER/.github:secreview.yml``."""
    return f"{owner}/{ORG_CONFIG_REPO}:{ORG_CONFIG_PATH}"


def _settings(text: str | bytes | None) -> dict[str, Any]:
    """The settings one file sets, validated exactly as ``parse_repo_config`` would."""
    if not text:
        return {}
    data = load_yaml(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_PATH} must be a mapping of settings")
    unknown = sorted(set(map(str, data)) - _ALLOWED)
    if unknown:
        raise ConfigError(f"{CONFIG_PATH}: unknown setting(s): {', '.join(unknown)}")
    _build(data)
    return dict(data)


def _problem(exc: ConfigError) -> str:
    """What kind of problem a file has, in words that never quote the file."""
    text = str(exc)
    for needle, kind in (
        ("not valid YAML", "not valid YAML"),
        ("larger than", "too large"),
        ("must be a mapping", "not a mapping of settings"),
        ("unknown setting", "unknown settings"),
    ):
        if needle in text:
            return kind
    return "a setting with an invalid value"


def merge_repo_config(
    shared: str | bytes | None,
    own: str | bytes | None,
    *,
    shared_label: str,
    own_label: str = CONFIG_PATH,
) -> RepoConfig:
    """The effective config: the shared file's settings, each overridden by the repository's.

    An invalid shared file is left out with a note naming the kind of problem (never its
    contents: another repository's maintainers wrote it); an invalid repository file is a
    ConfigError, as without a shared file.
    """
    notes: list[str] = []
    try:
        base = _settings(shared)
    except ConfigError as exc:
        base = {}
        notes.append(
            f"{shared_label} has {_problem(exc)} and was not applied: this review uses the "
            "repository's own settings and the defaults"
        )
    mine = _settings(own)
    merged = {**base, **mine}
    provenance = tuple((key, own_label if key in mine else shared_label) for key in sorted(merged))
    return replace(_build(merged), provenance=provenance, notes=tuple(notes))
