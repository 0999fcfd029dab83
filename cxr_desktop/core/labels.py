"""The 14 NIH ChestX-ray14 findings in their one canonical order."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
URGENT_FINDING = "Cardiomegaly"
NO_FINDING = "No Finding"

_BY_KEY = {name.lower().replace("_", " "): name for name in FINDINGS}


class UnknownFindingError(ValueError):
    """A label that is not one of the 14 NIH findings."""


def canonical_finding(name: str) -> str:
    """Return the canonical spelling of a finding ("Pleural Thickening" -> "Pleural_Thickening")."""
    key = " ".join(name.strip().replace("_", " ").split()).lower()
    try:
        return _BY_KEY[key]
    except KeyError:
        raise UnknownFindingError(f"unknown finding {name!r}; expected one of {', '.join(FINDINGS)}") from None


def finding_index(name: str) -> int:
    return FINDINGS.index(canonical_finding(name))


def multi_hot(labels: str | Iterable[str], findings: tuple[str, ...] = FINDINGS) -> np.ndarray:
    """Turn NIH ``A|B`` labels (or a list of names) into a float32 multi-hot row; "No Finding" is all zero."""
    names = labels.split("|") if isinstance(labels, str) else list(labels)
    row = np.zeros(len(findings), dtype=np.float32)
    for raw in names:
        raw = raw.strip()
        if not raw or raw.lower() == NO_FINDING.lower():
            continue
        row[findings.index(canonical_finding(raw))] = 1.0
    return row
