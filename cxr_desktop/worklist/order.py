"""The reading order of the worklist: overdue studies first, then urgent ones by score, then CHECK ones (a score
at or above the threshold on a film the input guard doubts) by score, then arrival."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueEntry:
    """What ordering needs to know about one row."""

    arrival: int  # arrival order (scan order), lower first
    arrived_at: float  # seconds (monotonic or wall clock; only differences matter)
    urgent: bool
    score: float = math.nan  # the urgent finding's score (NaN: not scored)
    check: bool = False  # at or above the threshold, but the input guard doubts the film


def is_overdue(entry: QueueEntry, now: float, max_wait_s: float | None) -> bool:
    return max_wait_s is not None and now - entry.arrived_at >= max_wait_s


def priority_order(entries: Sequence[QueueEntry], now: float, max_wait_s: float | None) -> list[int]:
    """Indices of ``entries`` in reading order.

    1. studies that have waited longer than ``max_wait_s`` (urgent or not), the longest wait first, so that
       nothing sinks forever behind a stream of urgent cases;
    2. urgent studies, the highest score first (ties, and missing scores last, by arrival);
    3. CHECK studies (a score at or above the threshold on a film the input guard doubts), ordered likewise,
       right below the urgent ones, where they are not overlooked;
    4. the rest, by arrival.
    """

    def key(i: int) -> tuple:
        entry = entries[i]
        if is_overdue(entry, now, max_wait_s):
            return (0, entry.arrived_at, entry.arrival)
        score = -entry.score if not math.isnan(entry.score) else math.inf
        if entry.urgent:
            return (1, score, entry.arrival)
        if entry.check:
            return (2, score, entry.arrival)
        return (3, 0.0, entry.arrival)

    return sorted(range(len(entries)), key=key)
