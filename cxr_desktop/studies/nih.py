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


REQUIRED_COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "View Position")


class NihTableError(ValueError):
    """The file is not a readable NIH label table; the message names the file and what is wrong."""


def read_nih_table(path: str | Path) -> dict[str, NihRecord]:
    """Image file name -> record, for every row of the NIH label file (plain or gzipped CSV). Anything else
    (another CSV, a README, a damaged gzip) raises ``NihTableError`` naming the file and the problem."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
            missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                raise NihTableError(
                    f"{path} is not an NIH Data_Entry label file: no {', '.join(repr(m) for m in missing)} "
                    f"column (its first line: {', '.join(reader.fieldnames or [])[:120] or 'empty'})"
                )
            return {record.image: record for record in map(_record, reader)}
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise NihTableError(
            f"{path}: cannot read the NIH label file ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    except (AttributeError, TypeError, ValueError) as exc:  # a short row (None cells) or a bad Follow-up #
        if isinstance(exc, NihTableError):
            raise
        raise NihTableError(f"{path}: a row of the NIH label file is malformed ({exc})") from None


def _record(row: dict[str, str]) -> NihRecord:
    name = row["Image Index"].strip()
    return NihRecord(
        image=name,
        labels=row["Finding Labels"].strip(),
        patient_id=row["Patient ID"].strip(),
        view_position=row["View Position"].strip().upper(),
        follow_up=int(row.get("Follow-up #", 0) or 0),
        age=(row.get("Patient Age") or "").strip(),
        sex=(row.get("Patient Gender") or "").strip(),
    )


def nih_study_metadata(table: dict[str, NihRecord]) -> dict[str, dict[str, str]]:
    """The per-file fields the study scanner takes (patient ID and view position)."""
    return {
        name: {"patient_id": rec.patient_id, "view_position": rec.view_position, "modality": "DX"}
        for name, rec in table.items()
    }
