"""What ``cxr-triage`` checks about its outputs before it scores anything, so that a wrong ``--out`` or
``--heatmaps`` is said at once instead of after every study was scored (and all results lost)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cxr_desktop.studies.reader import study_kind


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def overlap_problem(inputs: Sequence[Path], out: Path | None, folders: dict[str, Path | None]) -> str:
    """An output that would overwrite a study or be read back as studies: ``--out`` naming an input file or a
    study file (a .dcm/.png/.jpg, a DICOM), an output folder (``--heatmaps``, ``--dicom-out``) inside a
    folder being triaged (its images would be scored as studies the next time)."""
    if out is not None:
        if any(out.resolve() == path.resolve() for path in inputs) or study_kind(out) is not None:
            return f"--out {out} names a study file; name a new CSV file (e.g. results.csv)"
    for option, folder in folders.items():
        for path in inputs:
            if folder is not None and path.is_dir() and _inside(folder, path):
                return f"{option} {folder} is inside {path}, which is being triaged; write the results elsewhere"
    return ""


def output_problem(out: Path | None, heatmaps: Path | None) -> str:
    """What is wrong with the output paths ("" when nothing): ``--out`` must name a file in an existing,
    writable folder; ``--heatmaps`` a folder, made here when missing."""
    if out is not None:
        folder = out.parent
        if out.is_dir():
            return f"--out {out} is a folder; name the CSV file to write"
        if not folder.is_dir():
            return f"--out {out}: the folder {folder} does not exist"
        if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
            return f"--out {out}: no permission to write there"
    if heatmaps is not None:
        if heatmaps.exists() and not heatmaps.is_dir():
            return f"--heatmaps {heatmaps} is a file; name a folder for the heatmap images"
        try:
            heatmaps.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--heatmaps {heatmaps}: cannot make the folder ({exc.strerror or exc})"
        if not os.access(heatmaps, os.W_OK | os.X_OK):
            return f"--heatmaps {heatmaps}: no permission to write there"
    return ""
