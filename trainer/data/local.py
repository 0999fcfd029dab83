"""A hospital's own binary data: ``ROOT/{train,val,test}/{CLASS}/...`` folders, or a CSV
``path,label[,patient_id]`` (with a ``split`` column optional)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cxr_desktop.core.labels import FINDINGS, finding_index
from cxr_desktop.studies.reader import study_kind
from trainer.data.samples import SampleTable, Splits, patient_split


def binary_table(paths: list[Path], positive: list[bool], patients: list[str], finding: str) -> SampleTable:
    """One labelled finding (1 / 0), the other 13 not labelled (NaN)."""
    labels = np.full((len(paths), len(FINDINGS)), np.nan, dtype=np.float32)
    labels[:, finding_index(finding)] = np.asarray(positive, dtype=np.float32)
    return SampleTable(paths, labels, patients)


def _cap_classes(table: SampleTable, finding: str, counts: dict[str, int], positive_class: str, seed: int):
    """Keep at most ``counts[class]`` images of each class (seeded), as the earlier study's 2000/1000 design."""
    if not counts:
        return table
    column = table.labels[:, finding_index(finding)]
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for value, name in ((1.0, positive_class), (0.0, None)):
        idx = np.flatnonzero(column == value)
        cap = counts.get(name) if name else next((v for k, v in counts.items() if k != positive_class), None)
        if cap is not None and cap < len(idx):
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
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


def csv_splits(path: Path, finding: str, positive_class: str, val_fraction: float, seed: int) -> Splits:
    """CSV columns: path, label (the positive class name or 1/0), optional patient_id and split."""
    path = Path(path)
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    if not rows or "path" not in rows[0] or "label" not in rows[0]:
        raise ValueError(f"{path}: needs columns path,label[,patient_id][,split]")

    def positive(label: str) -> bool:
        return label.strip().lower() in (positive_class.lower(), "1", "true", "yes")

    by_split: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "test": []}
    for row in rows:
        by_split.setdefault((row.get("split") or "train").strip().lower(), []).append(row)

    def build(items: list[dict[str, str]]) -> SampleTable:
        paths = [(path.parent / r["path"]).resolve() for r in items]
        patients = [r.get("patient_id") or str(p) for r, p in zip(items, paths, strict=True)]
        return binary_table(paths, [positive(r["label"]) for r in items], patients, finding)

    train, val, test = build(by_split["train"]), build(by_split["val"]), build(by_split["test"])
    if len(val) == 0:
        keep, held = patient_split(train.patients, val_fraction, seed)
        train, val = train.subset(keep), train.subset(held)
    return Splits(train, val, test, {"val_source": "csv" if by_split["val"] else "patient-wise split of train"})
