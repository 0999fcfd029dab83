"""The worklist with its review decisions as CSV (reading order)."""

from __future__ import annotations

import csv
from pathlib import Path

from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.worklist.rows import Row

COLUMNS = [
    "path",
    "status",
    "error",
    "study_key",
    "patient_id",
    "study_date",
    "view_position",
    "urgent",
    "decision",
    "comment",
    *FINDINGS,
]


def export_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            info = row.info
            record = {
                "path": str(row.path),
                "status": row.status,
                "error": row.error,
                "study_key": row.key,
                "patient_id": info.patient_id if info else "",
                "study_date": info.study_date if info else "",
                "view_position": info.view_position if info else "",
                "urgent": int(row.urgent),
                "decision": row.review.decision,
                "comment": row.review.comment,
            }
            record.update(
                {name: f"{row.probabilities[name]:.6f}" if name in row.probabilities else "" for name in FINDINGS}
            )
            writer.writerow(record)
