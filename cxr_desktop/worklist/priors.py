"""Other films of the same patient on the worklist (priors and follow-ups): a study's patient ID (from its DICOM
header or the NIH label file) links them; NIH file names carry the follow-up number (``00000013_005.png``)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cxr_desktop.worklist.rows import Row

NIH_NAME = re.compile(r"^\d{8}_(\d{3})\.\w+$")


def follow_up(row: Row) -> int | None:
    """The NIH follow-up number in the file name (None for other names)."""
    match = NIH_NAME.match(row.path.name)
    return int(match.group(1)) if match else None


def same_patient(rows: Iterable[Row], row: Row) -> list[Row]:
    """The other films of ``row``'s patient among ``rows``, oldest first (by follow-up number, study date and
    time, then file name); none when the patient is not known."""
    patient = row.info.patient_id if row.info is not None else ""
    if not patient:
        return []
    others = [r for r in rows if r.path != row.path and r.info is not None and r.info.patient_id == patient]
    return sorted(others, key=_when)


def _when(row: Row) -> tuple:
    number = follow_up(row)
    info = row.info
    return (number if number is not None else -1, info.study_date, info.study_time, row.path.name)


def prior_of(rows: Iterable[Row], row: Row) -> Row | None:
    """The patient's film just before ``row`` (the one just after when ``row`` is the oldest; None alone)."""
    others = same_patient(rows, row)
    if not others:
        return None
    earlier = [r for r in others if _when(r) < _when(row)]
    return earlier[-1] if earlier else others[0]


def priors_text(rows: Iterable[Row], row: Row, finding: str, most: int = 5) -> str:
    """'Same patient on this list: 00000013_000.png (follow-up 0, score 0.21), …' ("" when none): the ``most``
    films nearest in time to ``row``, and how many more there are."""
    others = same_patient(rows, row)
    nearest = sorted(others, key=lambda other: abs(_order(other) - _order(row)))[:most]
    parts = []
    for other in [r for r in others if r in nearest]:
        number = follow_up(other)
        facts = [f"follow-up {number}" if number is not None else other.info.study_date]
        if (score := other.probabilities.get(finding)) is not None:
            facts.append(f"score {score:.2f}")
        parts.append(f"{other.path.name} ({', '.join(f for f in facts if f)})")
    more = f"; {len(others) - len(nearest)} more" if len(others) > len(nearest) else ""
    return "Same patient on this list (P: the prior): " + "; ".join(parts) + more if parts else ""


def _order(row: Row) -> int:
    """The follow-up number, for "nearest in time" (0 for a name without one)."""
    number = follow_up(row)
    return number if number is not None else 0
