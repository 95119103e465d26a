"""What a push changed in a file since its last review: the file's patch narrowed to those lines.

A re-review sends a changed file again. Most of its patch is usually what the last review
already judged (a follow-up commit edits a line or two of a new module); sending it whole pays
for those tokens again, outside any cached prefix. :func:`changed_since` compares the new side
of the file's patch now with the new side the last review was shown (``seen``: its lines'
text, in order), and keeps only the lines that changed since, with ``CONTEXT`` lines around
each, the lines that open the blocks each sits in (its function's signature, the branch it is
in) and the lines above it that set the names it uses (where its data comes from), at their
own line numbers. It is the review a person gives a follow-up commit: the
earlier part of the change was reviewed before, and its open findings stay open.

Content is compared, not positions: a base branch that moved, or hunks that merged, do not
confuse it. Whenever narrowing would not clearly pay (no earlier view, nothing or most of the
file changed) the answer is None and the whole patch is sent, as for a first review.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import Counter
from collections.abc import Sequence

from bot.diff.parse import ChangedFile, DiffLine, Hunk

CONTEXT = 1  # lines shown next to each changed line, besides the lines that open its block
MAX_SHARE = 0.6  # narrowing that keeps more than this share of the patch is not worth it
MAX_VIEW_LINES = 50_000  # lines of views kept per pull request; files past it are sent whole
DEPTH = 6  # levels of patience diff; a stretch still unanchored then counts as changed


def new_side(file: ChangedFile) -> tuple[str, ...]:
    """Every new-side line of ``file``'s patch, in order: ``+`` and the text of an added line,
    a space and the text of a context line (what a later :func:`changed_since` compares)."""
    return tuple(
        ("+" if ln.kind == "add" else " ") + ln.text
        for h in file.hunks
        for ln in h.lines
        if ln.new_lineno is not None
    )


def changed_since(
    file: ChangedFile, seen: Sequence[str], context: int = CONTEXT
) -> ChangedFile | None:
    """``file`` with only the lines changed since its new side was ``seen`` (:func:`new_side`
    of the patch the last review was shown), ``context`` lines next to them and the lines that
    open their blocks; None when the whole patch should be reviewed instead."""
    if not seen or not file.hunks:
        return None
    # Each new-side line as (position of its hunk in the file, its index in that hunk).
    where = [
        (k, i)
        for k, h in enumerate(file.hunks)
        for i, ln in enumerate(h.lines)
        if ln.new_lineno is not None
    ]
    now = new_side(file)
    touched: set[tuple[int, int]] = set()
    for i1, i2, j1, j2 in differences(seen, now):
        added = [j for j in range(j1, j2) if now[j].startswith("+")]
        if added:  # lines this change adds that the last review did not see
            touched.update(where[j] for j in added)
        elif any(line.startswith("+") for line in seen[i1:i2]):
            # lines it added are gone: show the base's lines back in their place, or where
            # they were
            spots = range(j1, j2) if j2 > j1 else (j1 - 1, j1)
            touched.update(where[j] for j in spots if 0 <= j < len(now))
        # else: only lines of the base, which hunks show or not as their boundaries fall
    total = sum(len(h.lines) for h in file.hunks)
    if not touched or len(touched) > MAX_SHARE * total:
        return None
    hunks = tuple(
        part
        for k, h in enumerate(file.hunks)
        for part in _parts(h, {i for hk, i in touched if hk == k}, context)
    )
    if sum(len(h.lines) for h in hunks) > MAX_SHARE * total:
        return None
    return dataclasses.replace(file, hunks=hunks, narrowed=True)


def differences(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Where ``a`` and ``b`` differ: ``(i1, i2, j1, j2)``, ``a[i1:i2]`` became ``b[j1:j2]``.

    Patience diff: common ends are trimmed, the lines found once in each side anchor the rest
    (the longest run of anchors in order), and each stretch between anchors is diffed the same
    way. Both sides come from outsiders, so the time is bounded whatever they hold: each level
    is linear, there are at most ``DEPTH`` levels, and a stretch with no anchor left is
    reported changed whole (more is sent, nothing is judged unchanged that changed).

    Not difflib (quadratic on repetitive input) and not the ``patiencediff`` package: its Rust
    core (1.0.2) panics with "Max recursion depth reached", a ``BaseException``, on ordinary
    80-line edits (tests/test_delta.py's random edits find one).
    """
    return _patience(a, b, 0, len(a), 0, len(b), 0)


def _patience(
    a: Sequence[str], b: Sequence[str], i1: int, i2: int, j1: int, j2: int, depth: int
) -> list[tuple[int, int, int, int]]:
    while i1 < i2 and j1 < j2 and a[i1] == b[j1]:
        i1, j1 = i1 + 1, j1 + 1
    while i2 > i1 and j2 > j1 and a[i2 - 1] == b[j2 - 1]:
        i2, j2 = i2 - 1, j2 - 1
    if i1 == i2 and j1 == j2:
        return []
    if i1 == i2 or j1 == j2 or depth == DEPTH:
        return [(i1, i2, j1, j2)]
    count_a, count_b = Counter(a[i1:i2]), Counter(b[j1:j2])
    at_a = {a[i]: i for i in range(i1, i2) if count_a[a[i]] == 1}
    pairs = [(at_a[b[j]], j) for j in range(j1, j2) if count_b[b[j]] == 1 and b[j] in at_a]
    anchors = _increasing(pairs)
    if not anchors:
        return [(i1, i2, j1, j2)]
    out: list[tuple[int, int, int, int]] = []
    for ai, bj in [*anchors, (i2, j2)]:
        out += _patience(a, b, i1, ai, j1, bj, depth + 1)
        i1, j1 = ai + 1, bj + 1
    return out


def _increasing(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of ``pairs`` (in ``b`` order) whose ``a`` positions also increase."""
    tails: list[int] = []  # tails[k]: the smallest a-position ending a run of length k + 1
    ends: list[int] = []  # index into pairs of that run's last pair
    back = [-1] * len(pairs)
    for n, (ai, _) in enumerate(pairs):
        k = bisect.bisect_left(tails, ai)
        if k == len(tails):
            tails.append(ai)
            ends.append(n)
        else:
            tails[k], ends[k] = ai, n
        back[n] = ends[k - 1] if k else -1
    run = []
    n = ends[-1] if ends else -1
    while n >= 0:
        run.append(pairs[n])
        n = back[n]
    return run[::-1]


def _openers(lines: Sequence[DiffLine], wanted: set[int]) -> set[int]:
    """For each line index in ``wanted``, the indices of the lines that open the blocks it
    sits in (each less indented than the last: ``def``, ``class``, ``if``, ``function … {``),
    as far as the hunk shows them. One pass, a stack of open blocks."""
    out: set[int] = set()
    stack: list[tuple[int, int]] = []  # (indent, index) of the lines enclosing the next one
    for i, ln in enumerate(lines):
        if ln.new_lineno is None or not ln.text.strip():
            continue  # removed and blank lines open nothing
        indent = len(ln.text) - len(ln.text.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if i in wanted:
            out.update(k for _, k in stack)
        stack.append((indent, i))
    return out


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGN = re.compile(r"(?<![=!<>:])(?::|[-+*/%&|^]|<<|>>|\*\*|//)?=(?!=)")
SOURCE_LOOKBACK = 60  # lines searched above a changed line for where its names were set
SOURCES_PER_LINE = 3


def _assigned(text: str) -> set[str]:
    """Names a line sets: left of its first ``=`` (``x = …``, ``a, b = …``, ``const x =``,
    ``x += …``, ``x := …``), or bound by ``for x in`` / ``as x``."""
    found: set[str] = set()
    hit = _ASSIGN.search(text)
    if hit is not None:
        found.update(_NAME.findall(text[: hit.start()]))
    stripped = text.strip()
    if stripped.startswith(("for ", "async for ")) and " in " in stripped:
        found.update(_NAME.findall(stripped.split(" in ", 1)[0]))
    if " as " in stripped:
        found.update(_NAME.findall(stripped.rsplit(" as ", 1)[1]))
    return found


def _sources(lines: Sequence[DiffLine], touched: set[int]) -> set[int]:
    """For each touched added line, the nearest lines above it (in its hunk, at most
    ``SOURCE_LOOKBACK`` up) that set a name it uses: where its data comes from, which a
    security review needs to judge it. One pass, remembering where each name was last set."""
    out: set[int] = set()
    last: dict[str, int] = {}
    for i, ln in enumerate(lines):
        if ln.new_lineno is None:
            continue
        if i in touched and ln.kind == "add":
            near = {
                last[n]
                for n in _NAME.findall(ln.text)
                if i - last.get(n, -(10**9)) <= SOURCE_LOOKBACK
            }
            out.update(sorted(near, reverse=True)[:SOURCES_PER_LINE])
        for name in _assigned(ln.text):
            last[name] = i
    return out


def _parts(hunk: Hunk, touched: set[int], context: int) -> list[Hunk]:
    """The runs of ``hunk``'s lines around each touched line (the removed lines next to it,
    then ``context`` new-side lines each way), the lines that open the blocks a touched line
    is in (a reviewer's bearings: which function, which branch) and the lines that set the
    names it uses (where its data comes from), each run a hunk."""
    if not touched:
        return []
    lines = hunk.lines
    keep = [False] * len(lines)
    for i in touched:
        keep[i] = True
        for step in (-1, 1):
            k, left = i + step, context
            while 0 <= k < len(lines) and (left > 0 or lines[k].new_lineno is None):
                keep[k] = True
                if lines[k].new_lineno is not None:
                    left -= 1
                k += step
    for k in _openers(lines, touched) | _sources(lines, touched):
        keep[k] = True
    out: list[Hunk] = []
    run: list[DiffLine] = []
    for ln, kept in zip(lines, keep, strict=True):
        if kept:
            run.append(ln)
        elif run:
            out.append(_hunk(hunk, run))
            run = []
    if run:
        out.append(_hunk(hunk, run))
    return out


def _hunk(whole: Hunk, lines: Sequence[DiffLine]) -> Hunk:
    """A hunk of ``lines`` (a run of ``whole``'s), its header counted from them."""
    olds = [ln.old_lineno for ln in lines if ln.old_lineno is not None]
    news = [ln.new_lineno for ln in lines if ln.new_lineno is not None]
    return Hunk(
        index=whole.index,
        old_start=olds[0] if olds else whole.old_start,
        old_length=len(olds),
        new_start=news[0] if news else whole.new_start,
        new_length=len(news),
        section=whole.section,  # git's function context: what the hunk's code sits in
        lines=tuple(lines),
    )
