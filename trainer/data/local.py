"""A hospital's own binary data: ``ROOT/{train,val,test}/{CLASS}/...`` folders, or a label CSV
``path,label[,patient_id][,split]`` read by :func:`read_label_csv` (paths relative to the CSV file's folder)."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cxr_desktop.core.labels import FINDINGS, finding_index
from cxr_desktop.studies.reader import study_kind
from trainer.data.samples import SampleTable, Splits, patient_split

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"": "train", "training": "train", "validation": "val", "valid": "val", "dev": "val", "testing": "test"}
POSITIVE_WORDS = ("1", "true", "yes")


class LabelRow(NamedTuple):
    path: Path  # absolute; a relative path in the CSV is relative to the CSV file's folder
    positive: bool
    patient: str  # the patient_id column, or the image path where there is none
    split: str  # train, val or test ("train" where the CSV has no split column)


def binary_table(paths: list[Path], positive: list[bool], patients: list[str], finding: str) -> SampleTable:
    """One labelled finding (1 / 0), the other 13 not labelled (NaN)."""
    labels = np.full((len(paths), len(FINDINGS)), np.nan, dtype=np.float32)
    labels[:, finding_index(finding)] = np.asarray(positive, dtype=np.float32)
    return SampleTable(paths, labels, patients)


def _cap_classes(
    table: SampleTable, finding: str, counts: dict[str, int], positive_class: str, seed: int
) -> SampleTable:
    """Keep at most ``counts[class]`` images of each class (seeded), as the earlier study's 2000/1000 design:
    the ``positive_class`` key caps the positives, the one other key the negatives."""
    if not counts:
        return table
    positive_keys = [k for k in counts if k.lower() == positive_class.lower()]
    negative_keys = [k for k in counts if k not in positive_keys]
    if len(negative_keys) > 1:
        raise ValueError(
            f"class_counts {counts}: give one key {positive_class!r} (positives) and one other key (negatives)"
        )
    column = table.labels[:, finding_index(finding)]
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for value, keys in ((1.0, positive_keys), (0.0, negative_keys)):
        idx = np.flatnonzero(column == value)
        if keys and counts[keys[0]] < len(idx):
            log.info("class_counts: %s %d of %d training images (seed %d)", keys[0], counts[keys[0]], len(idx), seed)
            idx = np.sort(rng.choice(idx, size=counts[keys[0]], replace=False))
        keep.extend(idx.tolist())
    return table.subset(sorted(keep))


def folder_splits(
    root: Path,
    finding: str,
    positive_class: str,
    val_fraction: float,
    seed: int,
    class_counts: dict[str, int] | None = None,
) -> Splits:
    root = Path(root)

    def read(split: str) -> SampleTable:
        paths, positive = [], []
        folder = root / split
        if not folder.is_dir():
            return binary_table([], [], [], finding)
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if positive_class not in classes:
            raise ValueError(f"{folder}: no class folder {positive_class!r} among {classes}")
        for name in classes:
            files = sorted(p for p in (folder / name).rglob("*") if p.is_file() and study_kind(p))
            paths += files
            positive += [name == positive_class] * len(files)
        # patients are unknown in folder data: each image is its own "patient"
        return binary_table(paths, positive, [str(p) for p in paths], finding)

    train, val, test = read("train"), read("val"), read("test")
    notes: dict[str, object] = {"val_source": "folder"}
    if len(val) == 0:
        keep, held = patient_split(train.patients, val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
        notes["val_source"] = f"seeded {val_fraction:.0%} of train (seed {seed})"
    train = _cap_classes(train, finding, class_counts or {}, positive_class, seed)
    return Splits(train, val, test, notes)


def _resolve(folder: Path, raw: str) -> Path:
    path = Path(raw).expanduser()
    return (path if path.is_absolute() else folder / path).resolve()


def read_label_csv(path: Path, positive_class: str = "cardiomegaly") -> list[LabelRow]:
    """Rows of a label CSV with the header ``path,label[,patient_id][,split]``.

    The one path rule: a relative ``path`` is relative to the CSV file's own folder, an absolute one is taken as
    it is. A label is positive when it is ``positive_class`` (any case), 1, true or yes; any other label is
    negative. ``split`` is train, val or test (validation/valid/dev mean val; empty or no column: train). Every
    image must exist; all problems are named in one ValueError."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: a csv dataset's `images` is the CSV file itself")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
        if "path" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise ValueError(f"{path}: needs the columns path,label[,patient_id][,split]; found {reader.fieldnames}")
        items = list(reader)
    folder, problems, missing, rows = path.parent, [], [], []
    positive_words = (positive_class.strip().lower(), *POSITIVE_WORDS)
    for line, item in enumerate(items, start=2):
        raw, label = (item.get("path") or "").strip(), (item.get("label") or "").strip()
        split = (item.get("split") or "").strip().lower()
        split = SPLIT_ALIASES.get(split, split)
        if not raw or not label:
            problems.append(f"line {line}: empty {'path' if not raw else 'label'}")
            continue
        if split not in SPLITS:
            problems.append(f"line {line}: split {item['split']!r} is not train, val or test")
            continue
        image = _resolve(folder, raw)
        if not image.is_file():
            missing.append(raw)
        patient = (item.get("patient_id") or "").strip() or str(image)
        rows.append(LabelRow(image, label.lower() in positive_words, patient, split))
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        problems.append(f"{len(missing)} of {len(items)} images not found (relative to {folder}): {shown}")
    if not items:
        problems.append("no rows")
    if problems:
        raise ValueError(
            f"{path}: " + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        )
    values = Counter((r["label"].strip(), r["label"].strip().lower() in positive_words) for r in items)
    log.info(
        "%s: %d images; labels %s",
        path,
        len(rows),
        ", ".join(f"{name} = {'positive' if pos else 'negative'} ({n})" for (name, pos), n in sorted(values.items())),
    )
    return rows


def csv_table(path: Path, finding: str = "Cardiomegaly", positive_class: str = "cardiomegaly") -> SampleTable:
    """All rows of a label CSV (see :func:`read_label_csv`) as one table, ``finding`` labelled 1 / 0."""
    rows = read_label_csv(path, positive_class)
    return binary_table([r.path for r in rows], [r.positive for r in rows], [r.patient for r in rows], finding)


def csv_splits(
    path: Path,
    finding: str,
    positive_class: str,
    val_fraction: float,
    seed: int,
    class_counts: dict[str, int] | None = None,
) -> Splits:
    """A label CSV's train/val/test (a seeded patient-wise val from train when it has no val rows), the train
    split capped per class by ``class_counts`` as for folder data."""
    rows = read_label_csv(path, positive_class)

    def build(split: str) -> SampleTable:
        items = [r for r in rows if r.split == split]
        return binary_table([r.path for r in items], [r.positive for r in items], [r.patient for r in items], finding)

    train, val, test = build("train"), build("val"), build("test")
    notes: dict[str, object] = {"val_source": "csv"}
    if len(val) == 0:
        keep, held = patient_split(train.patients, val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
        notes["val_source"] = f"seeded {val_fraction:.0%} of train by patient (seed {seed})"
    train = _cap_classes(train, finding, class_counts or {}, positive_class, seed)
    return Splits(train, val, test, notes)
