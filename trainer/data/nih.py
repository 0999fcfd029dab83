"""NIH ChestX-ray14: the label file, the official train_val/test lists, and a patient-wise validation split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cxr_desktop.core.labels import multi_hot
from cxr_desktop.studies.nih import read_nih_table
from trainer.data.samples import SampleTable, Splits, patient_split

log = logging.getLogger(__name__)


def index_images(root: Path) -> dict[str, Path]:
    """File name -> path for every PNG under ``root`` (``images/``, ``images_001..012/images/`` or flat)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).rglob("*.png")):
        found.setdefault(path.name, path)
    return found


def read_list(path: Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def nih_splits(
    images: Path, labels_csv: Path, train_list: Path, test_list: Path, val_fraction: float, seed: int
) -> Splits:
    """Only images that exist are used; how many of the official lists are missing is reported in ``notes``."""
    table = read_nih_table(labels_csv)
    present = index_images(images)
    train_val_names, test_names = read_list(train_list), read_list(test_list)

    def build(names: list[str]) -> SampleTable:
        keep = [n for n in names if n in present and n in table]
        labels = np.stack([multi_hot(table[n].labels) for n in keep]) if keep else np.zeros((0, 14), np.float32)
        return SampleTable([present[n] for n in keep], labels, [table[n].patient_id for n in keep])

    train_val, test = build(train_val_names), build(test_names)
    keep, held = patient_split(train_val.patients, val_fraction, seed)
    listed = len(train_val_names) + len(test_names)
    notes = {
        "label_rows": len(table),
        "listed_images": listed,
        "present_images": len(train_val) + len(test),
        "missing_images": listed - len(train_val) - len(test),
        "unlisted_present": len(set(present) - set(train_val_names) - set(test_names)),
    }
    log.info(
        "NIH: %d of %d listed images present (%d missing)", notes["present_images"], listed, notes["missing_images"]
    )
    return Splits(train_val.subset(keep), train_val.subset(held), test, notes)
