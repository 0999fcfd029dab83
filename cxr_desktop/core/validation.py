"""Does a model card's claim that its urgent finding passed external validation hold up?

``validated_findings`` alone is a claim: a card edited and sealed again (by a script "fixing" a field, or by
hand) could list the urgent finding with no evidence behind it, and the app would flag. The claim counts only
with the record ``cxr-train evaluate --validate`` writes beside it: ``metrics.validation_check`` names a check
in ``metrics.checks`` whose urgent finding has positives and an AUROC lower 95 % bound of at least
``VALIDATION_FLOOR``, and which did not keep copies of the model's training images. The record is covered by
the card's integrity record like every other field; it raises the bar for a careless edit, it is no signature.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cxr_desktop.core.card import ModelCard

VALIDATION_FLOOR = 0.70  # a finding is "validated" when its external AUROC lower 95 % bound reaches this


def validation_problem(card: ModelCard) -> str:
    """Why the card's urgent finding does not count as externally validated ("" when it does)."""
    finding = card.urgent_finding
    name = finding.replace("_", " ")
    if not card.validated_findings or finding not in card.validated_findings:
        return f"this model has no external validation record for {name}"
    check = card.metrics.get("validation_check")
    record = card.metrics.get("checks", {}).get(check) if isinstance(card.metrics.get("checks"), dict) else None
    if not isinstance(check, str) or not isinstance(record, dict):
        return f"this model's card lists {name} as validated but carries no validation record"
    return _record_problem(record, finding, check)


def _record_problem(record: dict[str, Any], finding: str, check: str) -> str:
    try:
        result = record["findings"][finding]
        low, positives = float(result["auroc_ci95"][0]), int(result["positives"])
        overlap = record.get("overlap") or {}
        kept_copies = int(overlap.get("training_copies", 0)) > int(overlap.get("excluded", 0))
    except (KeyError, IndexError, TypeError, ValueError):
        return f"this model's validation record ({check}) cannot be read for {finding}"
    if positives < 1 or not math.isfinite(low) or low < VALIDATION_FLOOR:
        return f"this model's validation record ({check}) does not show {finding} passing"
    if kept_copies:
        return f"this model's validation record ({check}) kept copies of its training images"
    return ""
