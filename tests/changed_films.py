"""Real NIH films written upright and changed, then triaged by `cxr-triage`: how the pixel checks' tests see
what a reader would (the CSV's quality, urgent and priority columns)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from cxr_desktop.cli import main as triage_main


def triage_upright_and_changed(
    nih_sample: Path, folder: Path, change: Callable[[np.ndarray], np.ndarray], count: int
) -> tuple[list[dict], list[dict]]:
    """The CSV rows of the first ``count`` NIH sample films, changed and upright."""
    sources = sorted((nih_sample / "images").glob("*.png"))[:count]
    for source in sources:
        gray = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(folder / f"{source.stem}-upright.png"), gray)
        cv2.imwrite(str(folder / f"{source.stem}-changed.png"), change(gray))
    out = folder / "triage.csv"
    assert triage_main([str(folder), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    changed = [r for r in rows if r["path"].endswith("-changed.png")]
    upright = [r for r in rows if r["path"].endswith("-upright.png")]
    assert len(changed) == len(upright) == len(sources)
    return changed, upright
