"""Synthetic demo studies, written as real DICOM files, so a newcomer sees the whole flow without data."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir

from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom

HEART_RATIOS = (0.62, 0.40, 0.58, 0.36, 0.44, 0.66, 0.38, 0.50)


def write_demo_studies(folder: Path | None = None) -> Path:
    folder = Path(folder or Path(user_data_dir("cxr-desktop", appauthor=False)) / "synthetic-demo")
    folder.mkdir(parents=True, exist_ok=True)
    for i, ratio in enumerate(HEART_RATIOS):
        path = folder / f"synthetic_demo_{i + 1:02d}.dcm"
        if not path.exists():
            view = "AP" if i % 4 == 3 else "PA"
            write_dicom(
                path,
                synthetic_chest(512, heart_ratio=ratio, seed=i),
                patient_id=f"DEMO-{i + 1:04d}",
                view_position=view,
            )
    return folder
