"""A split as plain arrays: image paths, a 14-column label matrix (NaN = not labelled) and patient IDs."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxr_desktop.core.labels import FINDINGS, finding_index


@dataclass
class SampleTable:
    paths: list[Path]
    labels: np.ndarray  # (N, 14) float32; 1 / 0, NaN where the finding is not labelled
    patients: list[str]

    def __post_init__(self) -> None:
        if not len(self.paths) == len(self.labels) == len(self.patients):
            raise ValueError("paths, labels and patients differ in length")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: np.ndarray | list[int]) -> SampleTable:
        idx = np.asarray(indices, dtype=np.int64)
        return SampleTable([self.paths[i] for i in idx], self.labels[idx], [self.patients[i] for i in idx])

    def mask_to(self, finding: str) -> SampleTable:
        """Keep only ``finding`` labelled (one-vs-rest training); the rest become NaN."""
        keep = finding_index(finding)
        labels = np.full_like(self.labels, np.nan)
        labels[:, keep] = self.labels[:, keep]
        return SampleTable(self.paths, labels, self.patients)

    def positives(self) -> dict[str, int]:
        return {name: int(np.nansum(self.labels[:, i])) for i, name in enumerate(FINDINGS)}


@dataclass
class Splits:
    train: SampleTable
    val: SampleTable
    test: SampleTable
    notes: dict[str, object] = field(default_factory=dict)

    def items(self) -> list[tuple[str, SampleTable]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]

    def csv_text(self) -> str:
        """The exact split as CSV text: one row per image with its split and patient."""
        handle = io.StringIO(newline="")
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "patient_id", *FINDINGS])
        for name, table in self.items():
            for p, patient, row in zip(table.paths, table.patients, table.labels, strict=True):
                writer.writerow([name, str(p), patient, *["" if np.isnan(v) else int(v) for v in row]])
        return handle.getvalue()

    def save_csv(self, path: Path) -> None:
        """The exact split a run used (``split.csv``)."""
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(self.csv_text(), encoding="utf-8", newline="")
        os.replace(tmp, path)


def patient_split(patients: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split by patient: (keep indices, held-out indices); no patient lands on both sides."""
    unique = sorted(set(patients))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_held = max(1, round(len(unique) * fraction)) if unique else 0
    held = {unique[i] for i in order[:n_held]}
    is_held = np.array([p in held for p in patients], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def strata(labels: np.ndarray) -> np.ndarray:
    """One stratum per row: the index of its rarest positive finding, or -1 when it has none.

    For one-finding (binary) data that is simply positive vs negative; for 14-finding data every finding keeps
    its share of images without enumerating label combinations."""
    positive = np.nan_to_num(labels, nan=0.0) == 1
    rarity = np.where(positive, positive.sum(axis=0)[None, :], np.iinfo(np.int64).max)
    return np.where(positive.any(axis=1), rarity.argmin(axis=1), -1)


def stratified_sample(table: SampleTable, size: int, seed: int) -> tuple[SampleTable, dict[str, object]]:
    """A seeded sample of ``size`` rows keeping each stratum's share (largest remainders; every stratum keeps at
    least one row when ``size`` allows), in the table's order, and a note of what was kept."""
    if size >= len(table):
        return table, {"kept": len(table), "of": len(table)}
    groups = strata(table.labels)
    names, counts = np.unique(groups, return_counts=True)
    exact = counts * size / len(table)
    quota = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - quota), kind="stable")[: size - int(quota.sum())]:
        quota[i] += 1
    while size >= len(names) and (quota == 0).any():  # no class vanishes: take one from the largest quota
        quota[np.argmax(quota)] -= 1
        quota[np.flatnonzero(quota == 0)[0]] += 1
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(groups == g), size=q, replace=False) for g, q in zip(names, quota, strict=True)]
    )
    kept = table.subset(np.sort(keep))
    before, after = table.positives(), kept.positives()
    note: dict[str, object] = {
        "kept": len(kept),
        "of": len(table),
        "seed": seed,
        "positives": {name: f"{after[name]} of {n}" for name, n in before.items() if n},
        "negatives": f"{int((strata(kept.labels) == -1).sum())} of {int((groups == -1).sum())}",
    }
    return kept, note
