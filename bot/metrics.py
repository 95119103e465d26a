"""Prometheus metrics: counters of this process, plus counters every worker keeps in Redis."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

SHARED_KEY = "secreview:metrics"
# Feedback on posted findings, per repository (``bot.review.outcomes`` writes them once per
# (fingerprint, PR, outcome)): ``{repo}`` and ``{repo, outcome}`` with outcome one of fixed,
# dismissed, open_at_merge, thumbs_up, thumbs_down.
FINDINGS_POSTED = "secreview_findings_posted_total"
FINDING_OUTCOMES = "secreview_finding_outcomes_total"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + inner + "}"


def series(name: str, labels: Mapping[str, str] | None = None) -> str:
    """A Prometheus series name: ``name{label="value",...}``."""
    return name + _labels(labels or {})


class Registry:
    """In-process counters and one latency histogram (the receiver's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def incr(self, name: str, labels: Mapping[str, str] | None = None, by: float = 1) -> None:
        """Add ``by`` to a counter."""
        with self._lock:
            self.counters[series(name, labels)] += by  # type: ignore[assignment]

    def observe(self, seconds: float) -> None:
        """Record one webhook's handling time."""
        with self._lock:
            for i, bound in enumerate(_LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1
                    break
            else:
                self.buckets[-1] += 1
            self.latency_sum += seconds
            self.latency_count += 1

    def render(self, shared: Mapping[bytes | str, Any] | None = None) -> str:
        """The Prometheus text exposition of these and the ``shared`` (Redis) counters."""
        lines = ["# TYPE secreview_webhook_seconds histogram"]
        running = 0
        for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), self.buckets, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'secreview_webhook_seconds_bucket{{le="{le}"}} {running}')
        lines.append(f"secreview_webhook_seconds_sum {self.latency_sum}")
        lines.append(f"secreview_webhook_seconds_count {self.latency_count}")
        merged: dict[str, float] = dict(self.counters)
        for key, value in (shared or {}).items():
            name = key.decode() if isinstance(key, bytes) else key
            merged[name] = merged.get(name, 0) + float(value)
        for name in _families(merged):
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# TYPE {name} {kind}")
            lines += [f"{s} {_num(v)}" for s, v in sorted(merged.items()) if _family(s) == name]
        return "\n".join(lines) + "\n"


def _family(s: str) -> str:
    return s.split("{", 1)[0]


def _families(names: Iterable[str]) -> list[str]:
    return sorted({_family(s) for s in names})


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def incr_shared(
    client: Any, name: str, labels: Mapping[str, str] | None = None, by: float = 1
) -> None:
    """Add to a counter kept in Redis (workers have no HTTP endpoint of their own)."""
    client.hincrbyfloat(SHARED_KEY, series(name, labels), by)
