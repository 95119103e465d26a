"""Run-wide redaction: a secret found anywhere in a run is redacted everywhere in it.

A value detected in one place (a diff line, the PR description, a document the scan reads) is
replaced in every input of the run — every file, the PR title and description, the repository
context and instructions, analyzer hints, prior findings — including where no detector would
have recognised it (``assert p == "Xk9pQ2vLm7"``) and in its cheap encodings (URL-encoded,
base64 of the exact value). The values live in this object only: it refuses to be pickled, its
repr shows counts, and nothing here writes them anywhere.

Use::

    secrets = RunRedaction.detect(files=files, title=pr.title, body=pr.body,
                                  texts={"instructions": repo.instructions})
    secrets.files, secrets.title, secrets.body, secrets.texts["instructions"]  # redacted
    secrets.findings      # secrets findings (placeholders only), PR text included
    secrets.allowed       # secrets on allow-commented lines: redacted, not reported
    secrets.redact(text)  # anything built later (hints, prior findings) before it is sent
    with secrets.guard(): ...  # the egress guard also knows this run's values
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import NoReturn
from urllib.parse import quote, quote_plus

from bot.diff import ChangedFile
from bot.findings import Finding
from bot.redact import guard
from bot.redact.linear import Regex, escape
from bot.redact.linear import compile as _rx
from bot.redact.redactor import redact_diff, redact_text, redact_with_values
from bot.redact.report import PR_DESCRIPTION, PR_TITLE, evidence, finding
from bot.redact.values import placeholder

MIN_VALUE = 6  # shorter values are too likely to be ordinary text to replace everywhere
_MIN_FORM = 8


def encoded_forms(value: str) -> set[str]:
    """The value and the encodings of it that are cheap to look for."""
    raw = value.encode("utf-8", "surrogatepass")
    forms = {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {f for f in forms if f == value or len(f) >= _MIN_FORM}


class Values:
    """A set of secret values and their encodings, found in text in one linear pass."""

    __slots__ = ("_kinds", "_pattern")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._kinds: dict[str, str] = {}
        for kind, value in pairs:
            for piece in value.split("\n"):  # a private key is matched line by line
                if len(piece.strip()) >= MIN_VALUE:
                    for form in encoded_forms(piece.strip()):
                        self._kinds.setdefault(form, kind)
        # Longest first: where two values overlap, the longer one is replaced whole.
        ordered = sorted(self._kinds, key=lambda v: (-len(v), v))
        self._pattern: Regex | None = _rx("|".join(escape(v) for v in ordered)) if ordered else None

    def __len__(self) -> int:
        return len(self._kinds)

    def __repr__(self) -> str:
        return f"Values({len(self._kinds)} forms)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret values never leave the process: Values cannot be pickled")

    def find(self, text: str) -> str | None:
        """The kind of the first value that occurs in ``text``, or None (never the value)."""
        if self._pattern is None:
            return None
        m = self._pattern.search(text)
        return None if m is None else self._kinds[m.group(0)]

    def scrub(self, text: str) -> str:
        """``text`` with every occurrence of every value replaced by its kind's placeholder."""
        if self._pattern is None or not text:
            return text
        pieces: list[str] = []
        pos = 0
        for m in self._pattern.finditer(text):
            pieces += [text[pos : m.start()], placeholder(self._kinds[m.group(0)])]
            pos = m.end()
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)


class RunRedaction:
    """Every secret of one run: detected once across all its inputs, redacted in all of them."""

    def __init__(self, values: Values) -> None:
        self._values = values
        self.files: list[ChangedFile] = []
        self.title = ""
        self.body = ""
        self.texts: dict[str, str] = {}
        self.findings: tuple[Finding, ...] = ()
        self.allowed = 0

    def __repr__(self) -> str:
        return f"RunRedaction({len(self.findings)} findings, {len(self._values)} value forms)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("secret values never leave the process: RunRedaction cannot be pickled")

    @classmethod
    def detect(
        cls,
        *,
        files: Sequence[ChangedFile] = (),
        title: str = "",
        body: str = "",
        texts: Mapping[str, str] | None = None,
        documents: Sequence[tuple[str, str]] = (),
    ) -> RunRedaction:
        """Detect across every input, then redact every occurrence in all of them.

        ``files`` are the diff (secrets on added lines are reported); ``title`` and ``body``
        are the PR's (reported too); ``texts`` are other inputs by name (repository context,
        instructions, analyzer hints: redacted, not reported); ``documents`` are whole files
        (path, text) read for secrets only, such as documentation a scan does not review.
        """
        pairs: list[tuple[str, str]] = []
        found: list[Finding] = []
        diff = redact_diff(files)
        pairs += diff.values
        found += diff.findings
        allowed = diff.allowed
        redacted_texts: dict[str, str] = {}
        for name, text in (texts or {}).items():
            done, values = redact_with_values(text)
            pairs += values
            redacted_texts[name] = done.text
        pr_text: dict[str, str] = {}
        for path, text in ((PR_TITLE, title), (PR_DESCRIPTION, body), *documents):
            report, values, allowed_here, clean = _whole_text(path, text)
            found += report
            pairs += values
            allowed += allowed_here
            pr_text[path] = clean
        run = cls(Values(pairs))
        run.files = [run.scrub_file(f) for f in diff.files]
        run.title = run.scrub(pr_text[PR_TITLE])
        run.body = run.scrub(pr_text[PR_DESCRIPTION])
        run.texts = {name: run.scrub(text) for name, text in redacted_texts.items()}
        run.findings = tuple(run.scrub_finding(f) for f in found)
        run.allowed = allowed
        return run

    @property
    def values(self) -> Values:
        """This run's secret values (in memory only), for the egress guard."""
        return self._values

    def scrub(self, text: str) -> str:
        """``text`` with every value this run has seen (and its encodings) replaced."""
        return self._values.scrub(text)

    def redact(self, text: str) -> str:
        """A text built later in the run (hints, prior findings): detectors, then run values."""
        return self.scrub(redact_text(text).text)

    def scrub_file(self, file: ChangedFile) -> ChangedFile:
        """``file`` with run values replaced on every line (all lines in one pass)."""
        if not len(self._values) or not file.hunks:
            return file
        texts = [h.section for h in file.hunks] + [ln.text for h in file.hunks for ln in h.lines]
        joined = "\n".join(texts)
        scrubbed = self.scrub(joined)
        if scrubbed == joined:
            return file
        new = iter(scrubbed.split("\n"))
        sections = [next(new) for _ in file.hunks]
        hunks = []
        for hunk, section in zip(file.hunks, sections, strict=True):
            lines = tuple(
                ln if (t := next(new)) == ln.text else dataclasses.replace(ln, text=t)
                for ln in hunk.lines
            )
            hunks.append(dataclasses.replace(hunk, section=section, lines=lines))
        return dataclasses.replace(file, hunks=tuple(hunks))

    def scrub_finding(self, f: Finding) -> Finding:
        """A finding (any source: model, analyzer, prior run) with run values replaced."""
        scrubbed = dataclasses.replace(
            f,
            title=self.scrub(f.title),
            description=self.scrub(f.description),
            exploit_scenario=self.scrub(f.exploit_scenario),
            recommendation=self.scrub(f.recommendation),
            evidence=self.scrub(f.evidence),
            suggestion=self.scrub(f.suggestion) if f.suggestion else f.suggestion,
        )
        return f if scrubbed == f else scrubbed

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Within this block, the egress guard also blocks any body holding one of our values."""
        with guard.guarding(self._values):
            yield


def _whole_text(path: str, text: str) -> tuple[list[Finding], list[tuple[str, str]], int, str]:
    """Findings, values, allowed count and redacted text of a whole text (PR text, a document)."""
    if not text:
        return [], [], 0, text
    redacted, values = redact_with_values(text)
    lines = redacted.text.split("\n")
    report = [
        finding(path, hit.line, hit.kind, evidence(lines[hit.line - 1], hit.column))
        for hit in redacted.reported
    ]
    return report, values, redacted.allowed, redacted.text
