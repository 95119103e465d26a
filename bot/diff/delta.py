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
import difflib
import re
from collections import Counter
from collections.abc import Sequence

from bot.diff.parse import ChangedFile, DiffLine, Hunk

CONTEXT = 1  # lines shown next to each changed line, besides the lines that open its block
MAX_SHARE = 0.6  # narrowing that keeps more than this share of the patch is not worth it
MAX_VIEW_LINES = 20_000  # a longer new side is not kept for the next review (sent whole then)
GAP = 200  # lines between two anchors compared line by line; a longer stretch counts as changed


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
    if not touched:
        return None
    hunks = tuple(
        part
        for k, h in enumerate(file.hunks)
        for part in _parts(h, {i for hk, i in touched if hk == k}, context)
    )
    kept = sum(len(h.lines) for h in hunks)
    if kept > MAX_SHARE * sum(len(h.lines) for h in file.hunks):
        return None
    return dataclasses.replace(file, hunks=hunks, narrowed=True)


def differences(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int, int]]:
    """Where ``a`` and ``b`` differ: ``(i1, i2, j1, j2)``, ``a[i1:i2]`` became ``b[j1:j2]``.

    Both come from outsiders, so the time is bounded whatever they hold: common ends are
    trimmed, lines found once in each side anchor the rest (the longest run of anchors in
    order, as patience diff does), and only the stretches between anchors no longer than
    ``GAP`` lines are compared line by line (difflib). A longer stretch is reported changed as
    a whole: the file is then sent whole, never misjudged as unchanged.
    """
    lo, end_a, end_b = 0, len(a), len(b)
    while lo < end_a and lo < end_b and a[lo] == b[lo]:
        lo += 1
    while end_a > lo and end_b > lo and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    once_a = Counter(a[lo:end_a])
    once_b = Counter(b[lo:end_b])
    at_a = {line: i for i, line in enumerate(a[lo:end_a], lo) if once_a[line] == 1}
    pairs = [
        (at_a[line], j)
        for j, line in enumerate(b[lo:end_b], lo)
        if once_b[line] == 1 and line in at_a
    ]
    out: list[tuple[int, int, int, int]] = []
    i, j = lo, lo
    for ai, bj in [*_increasing(pairs), (end_a, end_b)]:
        out += _stretch(a, b, i, ai, j, bj)
        i, j = ai + 1, bj + 1
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


def _stretch(
    a: Sequence[str], b: Sequence[str], i1: int, i2: int, j1: int, j2: int
) -> list[tuple[int, int, int, int]]:
    if i1 == i2 and j1 == j2:
        return []
    if i1 == i2 or j1 == j2 or max(i2 - i1, j2 - j1) > GAP:
        return [(i1, i2, j1, j2)]
    matcher = difflib.SequenceMatcher(None, a[i1:i2], b[j1:j2], autojunk=False)
    return [
        (i1 + x1, i1 + x2, j1 + y1, j1 + y2)
        for tag, x1, x2, y1, y2 in matcher.get_opcodes()
        if tag != "equal"
    ]


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
    """For each touched added line, the nearest lines above it (in its hunk) that set a name it
    uses: where its data comes from, which a security review needs to judge it. Bounded: a
    few lines each, searched at most ``SOURCE_LOOKBACK`` lines up."""
    out: set[int] = set()
    for i in touched:
        if lines[i].kind != "add":
            continue
        wanted = set(_NAME.findall(lines[i].text))
        found = 0
        for k in range(i - 1, max(-1, i - 1 - SOURCE_LOOKBACK), -1):
            ln = lines[k]
            if ln.new_lineno is None or not wanted:
                continue
            sets = _assigned(ln.text) & wanted
            if sets:
                out.add(k)
                wanted -= sets
                found += 1
                if found == SOURCES_PER_LINE:
                    break
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
