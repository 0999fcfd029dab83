"""The worklist with its review decisions as CSV (reading order); the app's export is a QA record: who decided,
when, with which model (id and fingerprint) at which operating point (``QA_COLUMNS``)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from cxr_desktop.core.atomic import replaced_when_complete
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.studies.study import StudyInfo
from cxr_desktop.worklist.audit import Signed
from cxr_desktop.worklist.rows import DONE, Row

STUDY_COLUMNS = ["path", "status", "error", "study_key", "patient_id", "study_date", "view_position", "urgent"]
# ``priority`` (the study's tier, ``Row.priority``: urgent, check, routine, or empty when not scored) came last
# then what explains the tier: the input guard's verdict and the flag threshold (issue 22, item 16)
COLUMNS = [*STUDY_COLUMNS, "decision", "comment", *FINDINGS, "priority", "quality", "cardiomegaly_threshold"]
UNCHECKED = "unchecked"  # the quality of a scored study whose model has no input guard
# the app's export adds these (last): the reader and time of each decision, and the model and operating point
QA_COLUMNS = ["reader", "decided_at", "model_id", "model_fingerprint", "operating_point"]
# cells the product formats itself as numbers: written as they are (a negative number is not a formula)
NUMERIC_COLUMNS = frozenset({"urgent", "cardiomegaly_threshold", *FINDINGS})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: str) -> str:
    """A text cell that a spreadsheet would run as a formula (OWASP CSV injection: it starts with =, +, -,
    @, tab or carriage return) gets a leading single quote, so it is shown as text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def safe_row(record: dict[str, str]) -> dict[str, str]:
    """``record`` with every text cell neutralised; the numeric columns are left as numbers."""
    return {key: value if key in NUMERIC_COLUMNS else neutralise(str(value)) for key, value in record.items()}


def study_fields(
    path: Path, status: str, error: str, info: StudyInfo | None, urgent: bool, probabilities: dict[str, float]
) -> dict[str, str]:
    """The columns every triage CSV shares (the app's export and ``cxr-triage``), the 14 scores included."""
    fields = {
        "path": str(path),
        "status": status,
        "error": error,
        "study_key": info.study_key if info else "",
        "patient_id": info.patient_id if info else "",
        "study_date": info.study_date if info else "",
        "view_position": info.view_position if info else "",
        "urgent": "1" if urgent else "0",
    }
    fields.update({name: probability_cell(probabilities.get(name)) for name in FINDINGS})
    return fields


def quality_cell(row: Row) -> str:
    """The input guard's verdict of a scored study ("unchecked" without a guard); empty when not scored."""
    return (row.quality or UNCHECKED) if row.status == DONE else ""


def threshold_cell(threshold: float | None) -> str:
    return "" if threshold is None else f"{threshold:.6f}"


def probability_cell(value: float | None) -> str:
    """A score as written to CSV; empty for a finding without a score (untrained, missing or NaN)."""
    return "" if value is None or math.isnan(value) else f"{value:.6f}"


@dataclass(frozen=True)
class QaRecord:
    """What the app's export adds: per study key the decision's reader and time, and the model in use."""

    signed: dict[str, Signed] = field(default_factory=dict)
    model_id: str = ""
    model_fingerprint: str = ""
    operating_point: str = ""

    def fields(self, row: Row) -> dict[str, str]:
        signed = self.signed.get(row.key) if row.review.decision else None
        return {
            "reader": signed.reader if signed else "",
            "decided_at": signed.iso if signed else "",
            "model_id": self.model_id,
            "model_fingerprint": self.model_fingerprint,
            "operating_point": self.operating_point,
        }


def export_csv(rows: list[Row], path: Path, qa: QaRecord | None = None, threshold: float | None = None) -> None:
    """``rows`` as CSV; with ``qa``, the QA record's columns too; ``threshold``: the flag threshold in use."""
    # a file name that is not valid UTF-8 is written with its odd bytes escaped (\udcff), not lost
    # written whole or not at all: a full disk leaves the previous export (``core.atomic``)
    with replaced_when_complete(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS + (QA_COLUMNS if qa is not None else []))
        writer.writeheader()
        for row in rows:
            record = study_fields(row.path, row.status, row.error, row.info, row.urgent, row.probabilities)
            record.update(decision=row.review.decision, comment=row.review.comment, priority=row.priority)
            record.update(quality=quality_cell(row), cardiomegaly_threshold=threshold_cell(threshold))
            if qa is not None:
                record.update(qa.fields(row))
            writer.writerow(safe_row(record))
