"""External validation on real NIH radiographs a model never saw: labelled images from one or more folders
joined to the NIH ``Data_Entry`` file, a fixed patient-wise split into a *tune* half (operating thresholds
are chosen there) and a *report* half (sensitivity and specificity are reported there), calibration, and
AUROC by sex, age band and view position."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cxr_desktop.core.labels import multi_hot
from cxr_desktop.studies.nih import read_nih_table
from trainer.data.nih import index_images
from trainer.data.samples import SampleTable
from trainer.metrics import auroc, bootstrap_auroc_ci, valid

log = logging.getLogger(__name__)

HALVES = ("all", "tune", "report")
HALF_SALT = "cxr-external-halves-v2"  # fixed: the halves must never change between candidates


@dataclass
class LabelledImages:
    """A sample table plus each image's NIH metadata (``sex``, ``age``, ``view``; '' where unknown)."""

    table: SampleTable
    metadata: list[dict[str, str]] | None

    def subset(self, keep: np.ndarray) -> LabelledImages:
        idx = np.flatnonzero(keep) if keep.dtype == bool else keep
        metadata = None if self.metadata is None else [self.metadata[i] for i in idx]
        return LabelledImages(self.table.subset(idx), metadata)


def nih_labelled(folders: list[Path], labels_csv: Path) -> LabelledImages:
    """Every PNG under ``folders`` that the NIH label file knows (matched by file name)."""
    table = read_nih_table(labels_csv)
    present: dict[str, Path] = {}
    for folder in folders:
        for name, path in index_images(folder).items():
            if name in present and present[name] != path:
                log.warning("%s appears twice (%s and %s); using the first", name, present[name], path)
            present.setdefault(name, path)
    names = sorted(n for n in present if n in table)
    if len(names) < len(present):
        log.warning("%d images under %s are not in %s", len(present) - len(names), folders, labels_csv.name)
    labels = np.stack([multi_hot(table[n].labels) for n in names]) if names else np.zeros((0, 14), np.float32)
    metadata = [{"sex": table[n].sex, "age": table[n].age, "view": table[n].view_position} for n in names]
    return LabelledImages(
        SampleTable([present[n] for n in names], labels, [table[n].patient_id for n in names]), metadata
    )


def report_half(patients: list[str]) -> np.ndarray:
    """True for images in the *report* half: a patient (never split) is in it when the sha256 of
    ``HALF_SALT:patient`` is odd, so adding or removing images never moves any other patient between the halves
    (positives are not stratified: each half gets about half of them, by chance)."""
    side = {p: hashlib.sha256(f"{HALF_SALT}:{p}".encode()).digest()[-1] % 2 == 1 for p in set(patients)}
    return np.array([side[p] for p in patients], dtype=bool)


def select_half(images: LabelledImages, half: str) -> LabelledImages:
    if half not in HALVES:
        raise ValueError(f"unknown half {half!r}; use one of {', '.join(HALVES)}")
    if half == "all":
        return images
    report = report_half(images.table.patients)
    return images.subset(report if half == "report" else ~report)


def age_band(age: str) -> str:
    digits = "".join(ch for ch in age if ch.isdigit())
    if not digits:
        return ""
    years = int(digits)
    return "age < 40" if years < 40 else ("age 40–60" if years <= 60 else "age > 60")


def subgroup_aurocs(
    y: np.ndarray, p: np.ndarray, metadata: list[dict[str, str]], patients: list[str] | None = None
) -> dict[str, dict]:
    """AUROC with a 95 % bootstrap interval (by patient when ``patients`` is given) for each sex, age band and
    view position present."""
    groups = {
        "sex": [m["sex"].upper()[:1] for m in metadata],
        "age": [age_band(m["age"]) for m in metadata],
        "view": [m["view"].upper() for m in metadata],
    }
    names = {"M": "male", "F": "female"}
    result: dict[str, dict] = {}
    for kind, values in groups.items():
        for value in sorted(set(values) - {""}):
            keep = np.array([v == value for v in values])
            yk, pk = y[keep], p[keep]
            members = None if patients is None else [patients[i] for i in np.flatnonzero(keep)]
            low, high = bootstrap_auroc_ci(yk, pk, n=500, seed=len(result), groups=members)
            result[names.get(value, value)] = {
                "group": kind,
                "n": int((~np.isnan(yk)).sum()),
                "positives": int(np.nansum(yk)),
                "auroc": auroc(yk, pk),
                "auroc_ci95": [low, high],
            }
    return result


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """Brier score, expected calibration error (equal-width bins) and the reliability table."""
    y, p = valid(y, p)
    if len(y) == 0:
        return {"brier": float("nan"), "ece": float("nan"), "bins": []}
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        mean_p, observed = float(p[members].mean()), float(y[members].mean())
        ece += members.sum() / len(y) * abs(mean_p - observed)
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "n": int(members.sum()),
                "mean_probability": mean_p,
                "observed_rate": observed,
            }
        )
    return {"brier": float(np.mean((p - y) ** 2)), "ece": float(ece), "bins": table}


def plot_reliability(result: dict, path: Path, title: str) -> None:
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    bins = result["bins"]
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    if bins:
        ax.plot([b["mean_probability"] for b in bins], [b["observed_rate"] for b in bins], "o-", lw=1.2)
        for b in bins:
            ax.annotate(
                str(b["n"]),
                (b["mean_probability"], b["observed_rate"]),
                fontsize=6,
                xytext=(3, -8),
                textcoords="offset points",
            )
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed fraction positive",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"{title}\nECE {result['ece']:.3f}, Brier {result['brier']:.3f}",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
