"""Triage rules: thresholds from the model card -> an urgent flag; what each of the card's operating points
flagged on the images it was tuned on. The reading order is the worklist's (``cxr_desktop.worklist.order``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cxr_desktop.core.validation import validation_problem

if TYPE_CHECKING:
    from cxr_desktop.core.bundle import ModelCard


@dataclass(frozen=True)
class TriagePolicy:
    """The urgent finding and its threshold at the chosen operating point, and whether studies may be flagged.

    A model whose card records no external validation of its urgent finding runs in **research mode**: its
    scores are computed and shown, but no study is flagged (neither URGENT nor CHECK), unless
    ``allow_unvalidated`` says to flag anyway. The app and ``cxr-triage`` both take this rule from here."""

    finding: str
    threshold: float
    operating_point: str
    validated: bool = True  # the card records an external validation of ``finding`` (``core.validation``)
    allow_unvalidated: bool = False  # flag even though it does not (--allow-unvalidated)
    unvalidated_because: str = ""  # why it does not ("" when it does)

    @classmethod
    def from_card(
        cls, card: ModelCard, operating_point: str | None = None, allow_unvalidated: bool = False
    ) -> TriagePolicy:
        point = operating_point or card.default_operating_point
        if card.operating_points and point not in card.operating_points:
            raise KeyError(f"operating point {point!r} not in the model card ({', '.join(card.operating_points)})")
        thresholds = card.operating_points.get(point, {})
        threshold = float(thresholds.get(card.urgent_finding, 0.5))
        problem = validation_problem(card)
        return cls(card.urgent_finding, threshold, point, not problem, allow_unvalidated, problem)

    @property
    def flags(self) -> bool:
        """May a study be flagged at all? Not in research mode (an unvalidated model, not allowed to flag)."""
        return self.validated or self.allow_unvalidated

    @property
    def research_mode(self) -> bool:
        return not self.flags

    @property
    def mode_note(self) -> str:
        """What the user must be told once about flagging with this model ("" for a validated one)."""
        name = self.finding.replace("_", " ")
        why = self.unvalidated_because or f"this model has no external validation record for {name}"
        if self.research_mode:
            return f"Research mode: {why}; scores are shown, but no study is flagged"
        if not self.validated:
            return f"Flagging with an UNVALIDATED model: {why}"
        return ""

    def score_text(self, probabilities: dict[str, float]) -> str:
        """e.g. "Cardiomegaly score 0.43 (flag at ≥ 0.23)"; "" when the study has no score for the finding."""
        score = probabilities.get(self.finding, math.nan)
        if math.isnan(score):
            return ""
        mode = "; research mode: no flag" if self.research_mode else ""
        return f"{self.finding.replace('_', ' ')} score {score:.2f} (flag at ≥ {self.threshold:.2f}{mode})"

    def above_threshold(self, probabilities: dict[str, float]) -> bool:
        """Is the score at or above the threshold? A missing or NaN score never is (NaN compares False)."""
        return probabilities.get(self.finding, float("nan")) >= self.threshold

    def is_urgent(self, probabilities: dict[str, float]) -> bool:
        """At or above the threshold, and the policy flags (not research mode)."""
        return self.flags and self.above_threshold(probabilities)


@dataclass(frozen=True)
class PointRate:
    """What one named operating point of a card did on the images its thresholds were tuned or validated on:
    the share of studies it flagged urgent and its sensitivity / specificity (None where the card has no
    record at that point's threshold)."""

    name: str
    threshold: float | None
    flag_rate: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    where: str = ""  # "threshold tuning" or "validation", with the number of images

    @property
    def label(self) -> str:
        name = self.name.replace("sensitivity_", "sensitivity ").replace("youden", "Youden")
        if self.flag_rate is None:
            return f"{name}: flag rate not in the card"
        return f"{name}: flags {self.flag_rate:.0%} ({self.where})"


# the external report half (images no threshold saw) first, then the images the thresholds were chosen on
METRIC_SECTIONS = (
    ("external_operating_points", "external NIH report half"),
    ("threshold_tuning", "threshold tuning"),
    ("validation", "validation"),
)


def point_rates(card: ModelCard) -> list[PointRate]:
    """Each named operating point of ``card`` with the flag rate it gave, from the card's metrics.

    A section (``threshold_tuning`` first: the images the thresholds were chosen on, then ``validation``) may
    record each point (``operating_points: {name: {flag_rate, sensitivity, specificity}}``); otherwise its
    urgent-finding entry gives the rate of the point whose threshold it was measured at:
    ``(sensitivity * positives + (1 - specificity) * negatives) / n``."""
    urgent = card.urgent_finding
    out = []
    for name, thresholds in card.operating_points.items():
        threshold = thresholds.get(urgent)
        out.append(_rate_from_metrics(card.metrics, name, threshold, urgent) or PointRate(name, threshold))
    return out


def _rate_from_metrics(metrics: dict, name: str, threshold: float | None, urgent: str) -> PointRate | None:
    for key, title in METRIC_SECTIONS:
        section = metrics.get(key)
        if not isinstance(section, dict):
            continue
        recorded = (section.get("operating_points") or {}).get(name)
        stats = (section.get("findings") or {}).get(urgent) or {}
        n = stats.get("n")
        where = f"{title}, {n} images" if n else title
        if isinstance(recorded, dict) and "flag_rate" in recorded:
            return PointRate(
                name, threshold, recorded["flag_rate"], recorded.get("sensitivity"), recorded.get("specificity"), where
            )
        try:
            same = threshold is not None and math.isclose(float(stats["threshold"]), threshold, abs_tol=1e-9)
            if not same:
                continue
            n, positives = int(stats["n"]), int(stats["positives"])
            sens, spec = float(stats["sensitivity"]), float(stats["specificity"])
        except (KeyError, TypeError, ValueError):
            continue
        if n > 0:
            rate = (sens * positives + (1 - spec) * (n - positives)) / n
            return PointRate(name, threshold, rate, sens, spec, where)
    return None
