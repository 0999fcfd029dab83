"""Triage rules: thresholds from the model card -> an urgent flag; worklist ordering with a wait cap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cxr_desktop.core.bundle import ModelCard


@dataclass(frozen=True)
class TriagePolicy:
    """The urgent finding and its threshold at the chosen operating point."""

    finding: str
    threshold: float
    operating_point: str

    @classmethod
    def from_card(cls, card: ModelCard, operating_point: str | None = None) -> TriagePolicy:
        point = operating_point or card.default_operating_point
        if card.operating_points and point not in card.operating_points:
            raise KeyError(f"operating point {point!r} not in the model card ({', '.join(card.operating_points)})")
        thresholds = card.operating_points.get(point, {})
        return cls(card.urgent_finding, float(thresholds.get(card.urgent_finding, 0.5)), point)

    def is_urgent(self, probabilities: dict[str, float]) -> bool:
        """At or above the threshold; a missing or NaN score is never urgent (NaN compares False)."""
        return probabilities.get(self.finding, float("nan")) >= self.threshold


@dataclass(frozen=True)
class QueueEntry:
    """What ordering needs to know about one row."""

    arrival: int  # arrival order (scan order), lower first
    arrived_at: float  # seconds (monotonic or wall clock; only differences matter)
    urgent: bool


def priority_order(entries: Sequence[QueueEntry], now: float, max_wait_s: float | None) -> list[int]:
    """Indices of ``entries`` in reading order: urgent first, then by arrival.

    A non-urgent study that has waited longer than ``max_wait_s`` is promoted to the urgent tier (in arrival
    order), so nothing sinks forever behind a stream of urgent cases.
    """

    def tier(entry: QueueEntry) -> int:
        overdue = max_wait_s is not None and now - entry.arrived_at >= max_wait_s
        return 0 if entry.urgent or overdue else 1

    return sorted(range(len(entries)), key=lambda i: (tier(entries[i]), entries[i].arrival))
