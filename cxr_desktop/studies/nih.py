"""The NIH ChestX-ray14 label table (``Data_Entry_2017*.csv[.gz]``)."""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NihRecord:
    image: str
    labels: str
    patient_id: str
    view_position: str
    follow_up: int
    age: str
    sex: str


def read_nih_table(path: str | Path) -> dict[str, NihRecord]:
    """Image file name -> record, for every row of the NIH label file (plain or gzipped CSV)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        reader = csv.DictReader(text)
        table: dict[str, NihRecord] = {}
        for row in reader:
            name = row["Image Index"].strip()
            table[name] = NihRecord(
                image=name,
                labels=row["Finding Labels"].strip(),
                patient_id=row["Patient ID"].strip(),
                view_position=row["View Position"].strip().upper(),
                follow_up=int(row.get("Follow-up #", 0) or 0),
                age=row.get("Patient Age", "").strip(),
                sex=row.get("Patient Gender", "").strip(),
            )
    return table


def nih_study_metadata(table: dict[str, NihRecord]) -> dict[str, dict[str, str]]:
    """The per-file fields the study scanner takes (patient ID and view position)."""
    return {
        name: {"patient_id": rec.patient_id, "view_position": rec.view_position, "modality": "DX"}
        for name, rec in table.items()
    }
