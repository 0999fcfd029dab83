"""The benchmarks' study folder: copies of the shared full-size NIH PNGs (1024 px) and chest DICOMs."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHEST_DICOMS = ["nih_dx_chest_uncompressed.dcm", "siim_cr_chest_pa_jpeg_baseline.dcm",
                "siim_cr_chest_monochrome1.dcm", "cr_mono1_10bit_chest_no_meta.dcm"]  # fmt: skip


def shared_sources(shared: Path, dicoms: bool = True) -> list[Path]:
    """The files the study folder is copied from; stops with what is needed when they are absent (the shared
    data is not part of the repository: see its README beside the project, ``../shared/data``)."""
    sources = sorted((shared / "nih14-sample" / "images-1024").glob("*.png"))
    missing = [] if sources else [f"{shared / 'nih14-sample' / 'images-1024'}/*.png"]
    if dicoms:
        missing += [str(shared / "dicom" / name) for name in CHEST_DICOMS if not (shared / "dicom" / name).is_file()]
    if missing:
        raise SystemExit(
            f"this benchmark needs the shared real data at {shared} (missing: {', '.join(missing)}); "
            "put ../shared/data beside the project or pass --shared DIR"
        )
    return sources + ([shared / "dicom" / name for name in CHEST_DICOMS] if dicoms else [])


def build_folder(folder: Path, count: int, shared: Path, dicoms: bool = True) -> list[Path]:
    """``count`` copies of the 1024 px NIH PNGs (and, with ``dicoms``, the chest DICOMs) in ``folder``."""
    sources = shared_sources(shared, dicoms)
    for i, source in zip(range(count), itertools.cycle(sources)):
        shutil.copy(source, folder / f"study_{i:04d}{source.suffix}")
    return sorted(folder.iterdir())
