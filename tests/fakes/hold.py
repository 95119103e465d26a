"""A request held at a fake server until the test releases it: kill a worker at a precise point.

Both fakes (GitHub, Workers AI) serve from an asyncio loop in a thread; a held request waits there
without blocking others. After ``release()`` the fake either answers it normally (``process``: the
side effect happened, as when a worker dies after GitHub did the work but before it read the
answer) or refuses it (``drop``: nothing happened, as when the worker dies before sending).
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass, field
from typing import Literal

Then = Literal["process", "drop"]
MAX_HOLD_S = 120.0  # a forgotten hold must not wedge the fake's server thread for ever


@dataclass
class Hold:
    """Hold the first request matching ``method`` and ``pattern`` (a regex on the path or kind)."""

    method: str
    pattern: str
    then: Then = "process"
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    taken: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Whether this (still unused) hold applies to a request."""
        return (
            not self.taken
            and self.method in ("*", method)
            and re.search(self.pattern, path) is not None
        )

    async def block(self) -> None:
        """Called by the fake: signal the test and wait (without blocking the loop) for release."""
        self.reached.set()
        waited = 0.0
        while not self.released.is_set() and waited < MAX_HOLD_S:
            await asyncio.sleep(0.02)
            waited += 0.02

    def wait(self, timeout: float = 60.0) -> None:
        """Block the test until the held request arrived; fail naming it otherwise."""
        if not self.reached.wait(timeout):
            raise AssertionError(f"no {self.method} {self.pattern} reached the fake in {timeout} s")

    def release(self) -> None:
        """Let the held request go on (processed or dropped, per ``then``)."""
        self.released.set()


def take(holds: list[Hold], method: str, path: str) -> Hold | None:
    """The first unused hold matching the request, marked used."""
    for hold in holds:
        if hold.matches(method, path):
            hold.taken = True
            return hold
    return None
