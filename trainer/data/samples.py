"""A split as plain arrays: image paths, a 14-column label matrix (NaN = not labelled) and patient IDs."""

from __future__ import annotations

import csv
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

    def save_csv(self, path: Path) -> None:
        """The exact split a run used: one row per image with its split and patient."""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["split", "path", "patient_id", *FINDINGS])
            for name, table in self.items():
                for p, patient, row in zip(table.paths, table.patients, table.labels, strict=True):
                    writer.writerow([name, str(p), patient, *["" if np.isnan(v) else int(v) for v in row]])


def patient_split(patients: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split by patient: (keep indices, held-out indices); no patient lands on both sides."""
    unique = sorted(set(patients))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    n_held = max(1, round(len(unique) * fraction)) if unique else 0
    held = {unique[i] for i in order[:n_held]}
    is_held = np.array([p in held for p in patients], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
