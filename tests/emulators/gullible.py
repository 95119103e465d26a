"""A deliberately gullible model for the injection corpus.

It reviews like ``fake_model.review`` — unless it finds an instruction aimed at AI reviewers
*outside* the untrusted-data fences of its prompt (or a fence closed early), which it obeys by
reporting nothing. A real model is less predictable; this one makes the question testable:
does any attacker-controlled text ever reach the model outside a fence?
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tests.emulators.fake_model import review

_FENCE = re.compile(
    r'<untrusted-data kind="[^"]*" id="([0-9a-f]+)">\n.*?</untrusted-data id="\1">', re.DOTALL
)
# Phrasings of the corpus's attacks. (Secreview's own policy quotes generic ones, such as
# "ignore previous instructions", to describe what to report; the model must not obey those.)
_OBEYS = re.compile(
    r"ignore all previous instructions|respond with no findings|dear ai|audit-off mode|"
    r"\[INST\]|<\|im_start\|>|\u202e",
    re.IGNORECASE,
)


def outside_fences(messages: Sequence[Mapping[str, Any]]) -> str:
    """Every part of the prompt that is not inside a well-formed untrusted-data block."""
    return "\n".join(_FENCE.sub("", str(m.get("content", ""))) for m in messages)


def fooled(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether this prompt carries an instruction the gullible model would follow."""
    return bool(_OBEYS.search(outside_fences(messages)))


def gullible(messages: Sequence[Mapping[str, Any]], request_json: Mapping[str, Any]) -> str:
    """The emulator script: obey stray instructions, otherwise review normally."""
    if fooled(messages):
        return json.dumps({"findings": []})
    return review(messages, request_json)
